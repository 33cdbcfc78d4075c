import type { JsonRpcMessage } from '../../libs/protocol/src';

/** Clients tracked at most; past it new clients are not classified (bounded memory). */
export const MAX_TRACKED_CLIENTS = 10_000;

/** Per-client request counters the S1 hook bumps; S4 reads them once a second and once a window. */
export class ClientCounters {
  requests = 0;
  toolCalls = 0;
  /** `requests` at the last per-second reading. */
  lastSecondRequests = 0;
  /** Counters at the start of the current window. */
  windowRequests = 0;
  windowToolCalls = 0;
  /** Most requests seen in one reading interval of this window, and how many readings it had. */
  peakPerSecond = 0;
  seconds = 0;
  /** The class last reported on S4 (undefined: never reported). */
  pattern: string | undefined = undefined;
  /** Consecutive idle windows: the entry is dropped after a few. */
  idleWindows = 0;
}

/**
 * Counts each client's requests and tools/call requests. One Map lookup and two additions per
 * client message: no allocation after a client's first message.
 */
export class ClientUsage {
  readonly clients = new Map<string, ClientCounters>();

  record(clientId: string, message: JsonRpcMessage): void {
    const m = message as { method?: unknown; id?: unknown };
    if (m.method === undefined || m.id === undefined) return; // notifications and responses
    let c = this.clients.get(clientId);
    if (c === undefined) {
      if (this.clients.size >= MAX_TRACKED_CLIENTS) return;
      c = new ClientCounters();
      this.clients.set(clientId, c);
    }
    c.requests++;
    if (m.method === 'tools/call') c.toolCalls++;
  }

  /** One reading per sample interval: the busiest interval of the window is what "bursty" compares. */
  readSecond(): void {
    for (const c of this.clients.values()) {
      const n = c.requests - c.lastSecondRequests;
      c.lastSecondRequests = c.requests;
      if (n > c.peakPerSecond) c.peakPerSecond = n;
      c.seconds++;
    }
  }
}
