import {
  isNotification,
  isRequest,
  isResponse,
  Method,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
} from '../../libs/protocol/src';

/**
 * Ids of requests the gateway itself sends upstream. Strings with this prefix plus the pid and a
 * counter: a client would have to guess both to collide, and the exact ids are tracked anyway, so
 * a client request that happens to start with `gw-` is still forwarded normally.
 */
export const GATEWAY_ID_PREFIX = 'gw-';
let internalCounter = 0;
const pidTag = process.pid.toString(36);

export function gatewayRequestId(): string {
  internalCounter++;
  return `${GATEWAY_ID_PREFIX}${pidTag}-${internalCounter.toString(36)}`;
}

/** What the owner of a replay must do next, returned by {@link UpstreamHandshake.incoming}. */
export const HandshakeStep = {
  /** Not a handshake message: deliver it to the sink. */
  Deliver: 0,
  /** A response to a gateway-internal request other than the replayed initialize: drop it. */
  Swallow: 1,
  /** The replayed initialize was answered: send the recorded initialized notification, then flush. */
  Replayed: 2,
  /** The replayed initialize was refused by the upstream (error response). */
  ReplayFailed: 3,
} as const;
export type HandshakeStep = (typeof HandshakeStep)[keyof typeof HandshakeStep];

/**
 * Records the client's initialize request and initialized notification as they pass through, so
 * that when the upstream loses its state (stdio child restarted, HTTP session 404, SSE stream
 * re-opened on a new session) the same handshake can be replayed before anything else is sent.
 * The replayed initialize carries a gateway-internal id; its response never reaches the client,
 * which already has the original one.
 */
export class UpstreamHandshake {
  /** The client's own initialize request, as sent (id included). */
  initializeRequest: JsonRpcRequest | undefined = undefined;
  /** The client's initialized notification, once seen. */
  initialized: JsonRpcNotification | undefined = undefined;
  /** Protocol version from the latest initialize result (client's or replayed). */
  protocolVersion: string | undefined = undefined;
  /** Id of the replayed initialize whose answer is awaited, if a replay is running. */
  private replayId: string | undefined = undefined;
  /** Other gateway-internal requests whose answers are dropped. */
  private readonly internal = new Set<string>();

  get recorded(): boolean {
    return this.initializeRequest !== undefined;
  }

  get replaying(): boolean {
    return this.replayId !== undefined;
  }

  /** Looks at a client message on its way upstream (cheap: two string compares for most messages). */
  outgoing(message: JsonRpcMessage): void {
    const method = (message as JsonRpcRequest).method;
    if (method === undefined) return;
    if (method === Method.Initialize && isRequest(message)) {
      this.initializeRequest = message;
      this.initialized = undefined;
    } else if (method === Method.Initialized && isNotification(message)) {
      this.initialized = message;
    }
  }

  /**
   * Looks at an upstream message on its way to the client and says whether it belongs to the
   * gateway. Records the protocol version of initialize results.
   */
  incoming(message: JsonRpcMessage): HandshakeStep {
    if (!isResponse(message)) return HandshakeStep.Deliver;
    const id = message.id;
    if (typeof id === 'string' && id.startsWith(GATEWAY_ID_PREFIX)) {
      if (id === this.replayId) {
        this.replayId = undefined;
        if ('error' in message) return HandshakeStep.ReplayFailed;
        this.noteResult(message);
        return HandshakeStep.Replayed;
      }
      if (this.internal.delete(id)) return HandshakeStep.Swallow;
    }
    if (this.initializeRequest !== undefined && id === this.initializeRequest.id) this.noteResult(message);
    return HandshakeStep.Deliver;
  }

  /** True when `id` is the id of a gateway-internal request (its failure must not reach the client). */
  isInternal(id: JsonRpcId): boolean {
    return typeof id === 'string' && (id === this.replayId || this.internal.has(id));
  }

  /** The client's initialize with a fresh internal id, or undefined when the client never sent one. */
  startReplay(): JsonRpcRequest | undefined {
    const init = this.initializeRequest;
    if (!init) return undefined;
    this.replayId = gatewayRequestId();
    return { jsonrpc: '2.0', id: this.replayId, method: init.method, params: init.params };
  }

  /** Gives up on a running replay (transport failure); a late answer is then swallowed. */
  abortReplay(): void {
    if (this.replayId !== undefined) this.internal.add(this.replayId);
    this.replayId = undefined;
  }

  /** A gateway-internal request (e.g. a health ping) whose answer is swallowed. */
  internalRequest(method: string, params?: Record<string, unknown>): JsonRpcRequest {
    const id = gatewayRequestId();
    this.internal.add(id);
    return params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params };
  }

  private noteResult(message: JsonRpcMessage): void {
    const result = (message as { result?: { protocolVersion?: unknown } }).result;
    if (result && typeof result.protocolVersion === 'string') this.protocolVersion = result.protocolVersion;
  }
}

/** Jittered exponential backoff ("full jitter" over the upper half) between min and max. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/** Short human reason for an error thrown by fetch/undici (its cause carries the socket error). */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof Error) {
      const code = (cause as { code?: string }).code;
      return code ? `${cause.message} (${code})` : cause.message;
    }
    return err.message;
  }
  return String(err);
}
