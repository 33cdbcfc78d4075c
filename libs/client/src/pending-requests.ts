import type {
  JSONRPCErrorResponse,
  JSONRPCMessage,
  JSONRPCRequest,
  JSONRPCResponse,
  RequestId,
} from '@modelcontextprotocol/sdk/types.js';

/**
 * Where a client request stands on its way to the gateway:
 * - `queued`: not written to any connection yet (we were disconnected);
 * - `sent`: written to a connection, but nothing proves the gateway read it (a WebSocket
 *   frame, a POST whose answer never came) — re-sent after a reconnect;
 * - `confirmed`: the gateway acknowledged it (a 202, or the headers of a POST's response),
 *   so its session holds it; re-sending it would only move where its answer is written.
 */
export type PendingState = 'queued' | 'sent' | 'confirmed';

export interface PendingRequest {
  readonly id: RequestId;
  readonly message: JSONRPCRequest;
  state: PendingState;
  /** Streamable HTTP: the POST response stream the gateway answers this request on. */
  stream: number | undefined;
  /** How many times it was written to a connection. */
  sends: number;
  readonly createdAt: number;
}

/**
 * The client's requests that have no response yet, in the order they were issued, so that
 * after a failover each is re-sent once (with its original JSON-RPC id, which the gateway
 * de-duplicates) and each response is delivered once.
 */
export class PendingRequests {
  private readonly byKey = new Map<string, PendingRequest>();

  get size(): number {
    return this.byKey.size;
  }

  /** Starts tracking a request (state `queued`). A request id already pending is replaced. */
  add(message: JSONRPCRequest, now = Date.now()): PendingRequest {
    const entry: PendingRequest = {
      id: message.id,
      message,
      state: 'queued',
      stream: undefined,
      sends: 0,
      createdAt: now,
    };
    const key = idKey(message.id);
    // Delete first so a replaced entry moves to the end (Map keeps insertion order).
    this.byKey.delete(key);
    this.byKey.set(key, entry);
    return entry;
  }

  get(id: RequestId): PendingRequest | undefined {
    return this.byKey.get(idKey(id));
  }

  has(id: RequestId): boolean {
    return this.byKey.has(idKey(id));
  }

  markSent(id: RequestId): void {
    const entry = this.get(id);
    if (!entry) return;
    entry.sends++;
    if (entry.state === 'queued') entry.state = 'sent';
  }

  /** The gateway has the request; `stream` is the Streamable HTTP stream its answer goes to. */
  markConfirmed(id: RequestId, stream?: number): void {
    const entry = this.get(id);
    if (!entry) return;
    entry.state = 'confirmed';
    if (stream !== undefined) entry.stream = stream;
  }

  /**
   * A response arrived. Returns the request it answers and stops tracking it, or undefined
   * when nothing is waiting for this id (a duplicate delivered after a replay).
   */
  settle(id: RequestId): PendingRequest | undefined {
    const key = idKey(id);
    const entry = this.byKey.get(key);
    if (entry) this.byKey.delete(key);
    return entry;
  }

  /** The client gave up on a request (notifications/cancelled): never re-send it. */
  forget(id: RequestId): void {
    this.byKey.delete(idKey(id));
  }

  /** Requests written to a connection that was lost before the gateway confirmed them, oldest first. */
  unconfirmed(): PendingRequest[] {
    const out: PendingRequest[] = [];
    for (const entry of this.byKey.values()) if (entry.state === 'sent') out.push(entry);
    return out;
  }

  /** Streamable HTTP streams that still owe the client an answer. */
  openStreams(): number[] {
    const out = new Set<number>();
    for (const entry of this.byKey.values()) {
      if (entry.state === 'confirmed' && entry.stream !== undefined) out.add(entry.stream);
    }
    return [...out];
  }

  /** Every pending request, oldest first. */
  all(): PendingRequest[] {
    return [...this.byKey.values()];
  }

  clear(): void {
    this.byKey.clear();
  }
}

/** Map key that keeps `1` and `"1"` apart: JSON-RPC ids are opaque and must match exactly. */
export function idKey(id: RequestId): string {
  return typeof id === 'number' ? `n${id}` : `s${id}`;
}

/** True for a request (method and id), false for notifications and responses. */
export function isRequestMessage(message: JSONRPCMessage): message is JSONRPCRequest {
  const m = message as { method?: unknown; id?: unknown };
  return typeof m.method === 'string' && m.id !== undefined && m.id !== null;
}

/** True for a response (result or error). */
export function isResponseMessage(
  message: JSONRPCMessage,
): message is JSONRPCResponse | JSONRPCErrorResponse {
  const m = message as { method?: unknown };
  return m.method === undefined && ('result' in message || 'error' in message);
}
