import {
  ErrorCode,
  errorResponse,
  Method,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
} from '../../libs/protocol/src';

/**
 * One client request carried under a gateway id. `owner` is whoever the answer goes back to
 * (a pooled port, a sessionless response stream).
 */
export interface Carried<O> {
  readonly owner: O;
  /** The client's own id, restored exactly on the answer (numbers stay numbers, strings strings). */
  readonly id: JsonRpcId;
  /** The id the request has upstream. */
  readonly gatewayId: string;
  /** The progress token as the upstream sees it, when the client asked for progress. */
  readonly upstreamToken: string | undefined;
  readonly clientToken: string | number | undefined;
  /** performance.now() when it was carried (upstream latency). */
  readonly sentAt: number;
}

/** The answer to a request of the gateway's own: a result, or an error (JSON-RPC's or the gateway's). */
export type InternalAnswer =
  | { result: unknown; error?: undefined }
  | { result?: undefined; error: { code: number; message: string; data?: unknown } };

interface InternalWaiter {
  resolve(answer: InternalAnswer): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | undefined;
}

/** One counter for every multiplexer of the process: a gateway id is never reused while it runs. */
let counter = 0;

/**
 * The one id-remapping multiplexer of the gateway: many client requests, whose ids are only
 * unique per client (independent clients all start at 1), share one upstream session under
 * gateway-unique ids. It assigns the gateway id and progress token on the way up, restores the
 * client's exact id and token on the way down, turns a client's cancellation into one the
 * upstream understands, forgets a request once it is answered or abandoned, and runs the
 * gateway's own requests (initialize, ping, subscriptions, tools/list) whose answers never reach
 * a client. Used by a shared upstream session of pooled mode (owners: pooled ports) and by the
 * 2026-07-28 bridge (owners: sessionless response streams).
 *
 * Plain bookkeeping: it sends nothing itself, except through the `send` given to `internal`.
 */
export class RequestMultiplexer<O> {
  private readonly carried = new Map<string, Carried<O>>();
  /** Upstream progress token → gateway id of the request it belongs to. */
  private readonly tokens = new Map<string, string>();
  private readonly internals = new Map<string, InternalWaiter>();

  constructor(
    /** What gateway ids start with (tells their origin apart in upstream logs). */
    private readonly prefix: string,
    /** Ids of the gateway's own requests; by default the same sequence as carried ones. */
    private readonly internalId: () => string = () => this.nextId(),
  ) {}

  /** Requests carried and not yet answered or forgotten. */
  get size(): number {
    return this.carried.size;
  }

  /**
   * Registers a client request of `owner` and returns it as the upstream must see it: under a
   * gateway id, with a gateway progress token when the client asked for progress. The client's
   * message is not changed.
   */
  carry(owner: O, request: JsonRpcRequest): JsonRpcRequest {
    const gatewayId = this.nextId();
    let params = request.params as Record<string, unknown> | undefined;
    const meta = params?._meta as { progressToken?: unknown } | undefined;
    const clientToken = meta?.progressToken;
    let upstreamToken: string | undefined;
    if (typeof clientToken === 'string' || typeof clientToken === 'number') {
      upstreamToken = `${gatewayId}-p`;
      this.tokens.set(upstreamToken, gatewayId);
      params = { ...params, _meta: { ...meta, progressToken: upstreamToken } };
    }
    this.carried.set(gatewayId, {
      owner,
      id: request.id,
      gatewayId,
      upstreamToken,
      clientToken: upstreamToken === undefined ? undefined : (clientToken as string | number),
      sentAt: performance.now(),
    });
    const message: JsonRpcRequest = { jsonrpc: '2.0', id: gatewayId, method: request.method };
    if (params !== undefined) message.params = params;
    return message;
  }

  /** The carried request under `gatewayId`, if it is still waiting for its answer. */
  find(gatewayId: JsonRpcId | undefined): Carried<O> | undefined {
    return typeof gatewayId === 'string' ? this.carried.get(gatewayId) : undefined;
  }

  /**
   * The one request carried, when exactly one is. Not a way to attribute a message by itself: a
   * caller uses it only where the session is lent to one request at a time (an exclusive
   * checkout), never because one request happens to be carried at that moment.
   */
  sole(): Carried<O> | undefined {
    if (this.carried.size !== 1) return undefined;
    for (const c of this.carried.values()) return c;
    return undefined;
  }

  /**
   * An upstream answer: the request it answers is forgotten and returned, and the message now
   * carries the client's id again (changed in place: the answer is the multiplexer's to rewrite).
   * Undefined for an answer to nothing carried (cancelled, abandoned, an internal request).
   */
  answer(message: JsonRpcMessage): Carried<O> | undefined {
    const c = this.find((message as { id?: JsonRpcId }).id);
    if (!c) return undefined;
    this.forget(c.gatewayId);
    (message as { id: JsonRpcId }).id = c.id;
    return c;
  }

  /**
   * A progress notification: returns the request it belongs to, with the client's token put
   * back into the message (in place); undefined when its token is not one of ours.
   */
  progress(message: JsonRpcMessage): Carried<O> | undefined {
    const params = (message as JsonRpcNotification).params as { progressToken?: unknown } | undefined;
    const token = params?.progressToken;
    const gatewayId = typeof token === 'string' ? this.tokens.get(token) : undefined;
    const c = gatewayId === undefined ? undefined : this.carried.get(gatewayId);
    if (!c) return undefined;
    params!.progressToken = c.clientToken;
    return c;
  }

  /**
   * The client gave up on a carried request: it is forgotten, and the returned notification
   * tells the upstream with the id the upstream knows. Undefined when it was not carried (any
   * more): then the upstream is not told twice.
   */
  cancel(gatewayId: string, reason: string | undefined): JsonRpcNotification | undefined {
    if (!this.forget(gatewayId)) return undefined;
    const params: Record<string, unknown> = { requestId: gatewayId };
    if (reason !== undefined) params.reason = reason;
    return { jsonrpc: '2.0', method: Method.Cancelled, params };
  }

  /** Stops tracking a carried request (answered elsewhere, abandoned); returns it, if it was carried. */
  forget(gatewayId: string): Carried<O> | undefined {
    const c = this.carried.get(gatewayId);
    if (!c) return undefined;
    this.carried.delete(gatewayId);
    if (c.upstreamToken !== undefined) this.tokens.delete(c.upstreamToken);
    return c;
  }

  /** Forgets and returns every carried request (the upstream is gone: each gets an error). */
  drain(): Carried<O>[] {
    const all = [...this.carried.values()];
    this.carried.clear();
    this.tokens.clear();
    return all;
  }

  // ------------------------------------------------------------------ the gateway's own requests

  /**
   * Sends a request of the gateway's own through `send` and resolves with its answer (a result
   * or an error), which never reaches a client. With `timeoutMs` it rejects when no answer comes
   * in time; without, whoever carries it must answer or abandon it (a session's request timeout).
   */
  internal(
    method: string,
    params: Record<string, unknown> | undefined,
    send: (request: JsonRpcRequest) => void,
    timeoutMs?: number,
  ): Promise<InternalAnswer> {
    const id = this.internalId();
    return new Promise<InternalAnswer>((resolve, reject) => {
      const waiter: InternalWaiter = { resolve, reject, timer: undefined };
      if (timeoutMs !== undefined) {
        waiter.timer = setTimeout(() => {
          this.internals.delete(id);
          reject(new Error(`upstream did not answer ${method} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.internals.set(id, waiter);
      const request: JsonRpcRequest = { jsonrpc: '2.0', id, method };
      if (params !== undefined) request.params = params;
      send(request);
    });
  }

  /** True when `message` answered a request of the gateway's own (its waiter has it now). */
  internalAnswer(message: JsonRpcMessage): boolean {
    const id = (message as { id?: JsonRpcId }).id;
    const waiter = typeof id === 'string' ? this.internals.get(id) : undefined;
    if (!waiter) return false;
    this.internals.delete(id as string);
    if (waiter.timer) clearTimeout(waiter.timer);
    waiter.resolve(message as InternalAnswer);
    return true;
  }

  /** A request of the gateway's own will get no answer: its waiter gets an UpstreamUnavailable error. */
  abandonInternal(id: JsonRpcId, reason: string): void {
    this.internalAnswer(errorResponse(id, ErrorCode.UpstreamUnavailable, reason));
  }

  /** The upstream is gone: every request of the gateway's own gets an UpstreamUnavailable error. */
  abandonAllInternal(reason: string): void {
    for (const id of [...this.internals.keys()]) this.abandonInternal(id, reason);
  }

  private nextId(): string {
    counter++;
    return `${this.prefix}${counter.toString(36)}`;
  }
}

/** The result of an internal answer, or a rejection with the error's message. */
export function resultOf(answer: InternalAnswer): Record<string, unknown> {
  if (answer.error !== undefined) throw new Error(answer.error.message);
  return (answer.result ?? {}) as Record<string, unknown>;
}
