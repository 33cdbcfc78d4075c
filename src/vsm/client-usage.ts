import type { JsonRpcMessage } from '../../libs/protocol/src';

/** Clients tracked at most (bounded memory); past it the least recently seen one makes room. */
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
 * client message: no allocation after a client's first message. Junk client ids (claimed ones,
 * with authentication off) cannot fill the table for good: when it is full the least recently
 * seen entry is dropped, so a new client is still classified.
 */
export class ClientUsage {
  readonly clients = new Map<string, ClientCounters>();

  record(clientId: string, message: JsonRpcMessage): void {
    const m = message as { method?: unknown; id?: unknown };
    if (m.method === undefined || m.id === undefined) return; // notifications and responses
    const clients = this.clients;
    let c = clients.get(clientId);
    if (c === undefined) {
      // Map order is insertion order, and (under pressure, below) last use: the first key is the least recently seen.
      if (clients.size >= MAX_TRACKED_CLIENTS) clients.delete(clients.keys().next().value!);
      c = new ClientCounters();
      clients.set(clientId, c);
    } else if (clients.size > MAX_TRACKED_CLIENTS >>> 1) {
      // Only once the table is half full is a seen entry moved to the end (two more Map operations).
      clients.delete(clientId);
      clients.set(clientId, c);
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
