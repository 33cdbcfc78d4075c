import {
  ErrorCode,
  errorResponse,
  isRequest,
  isResponse,
  LATEST_SESSION_PROTOCOL,
  Method,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcRequest,
} from '../../libs/protocol/src';
import type { MessageHeaders, UpstreamConnection, UpstreamSink } from '../upstream/upstream-connection';
import { gatewayRequestId } from '../upstream/upstream-handshake';
import { RequestMultiplexer, type InternalAnswer } from './request-multiplexer';

/** The client side of a shared upstream session: a pooled port, seen from below. */
export interface PooledClient {
  /**
   * A message for this client (response with its own id restored, progress, a server request);
   * `related` is the client's request it belongs to, when known.
   */
  deliverFromUpstream(message: JsonRpcMessage, related?: JsonRpcId): void;
  /** The level the client asked for with logging/setLevel (log notifications below it are dropped). */
  readonly logLevel: string | undefined;
}

/** Where a shared upstream reports what no single request owns (subscriptions, list changes, server requests). */
export interface SharedUpstreamOwner {
  unattributed(shared: SharedUpstream, message: JsonRpcMessage): void;
  /** A server→client request raised during one client's request: the owner remaps its id and routes it. */
  serverRequest(
    shared: SharedUpstream,
    client: PooledClient,
    request: JsonRpcRequest,
    related: JsonRpcId,
  ): void;
  /** A carried request was answered or forgotten: the session may go back to the pool. */
  settled(shared: SharedUpstream): void;
  /** The connection is gone: the pool must destroy this resource. */
  lost(shared: SharedUpstream): void;
  /** One outcome of the replica (feeds its breaker). */
  record(ok: boolean): void;
  /** A carried client request provably never reached the upstream: the owner may carry it elsewhere. */
  notSent?(shared: SharedUpstream, client: PooledClient, id: JsonRpcId, why: string): void;
  /** A request was answered by the upstream `ms` after it was written (upstream latency). */
  answered?(ms: number): void;
}

const LOG_LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

/**
 * One upstream MCP session that several client sessions share (pooled mode). The gateway
 * runs its own initialize on it; every client request it carries gets a gateway id (and a
 * gateway progress token) from the request multiplexer, and the answer goes back to exactly the
 * client that asked, with the client's id restored. A server→client request raised while it carries exactly one
 * request (or on that request's HTTP stream) belongs to that request's client; one that cannot
 * be attributed is refused with a JSON-RPC error, never guessed.
 */
export class SharedUpstream implements UpstreamSink {
  initializeResult: Record<string, unknown> | undefined = undefined;
  /** Client requests carried here (owners: the pooled ports) and the gateway's own. */
  private readonly requests = new RequestMultiplexer<PooledClient>('gp-', gatewayRequestId);
  dead = false;

  constructor(
    readonly connection: UpstreamConnection,
    private readonly owner: SharedUpstreamOwner,
  ) {
    connection.sink = this;
  }

  get load(): number {
    return this.requests.size;
  }

  /** Starts the connection and runs the gateway's own handshake on it. */
  async start(timeoutMs: number): Promise<void> {
    await this.connection.start();
    const answer = await this.internalRequest(
      Method.Initialize,
      {
        protocolVersion: LATEST_SESSION_PROTOCOL,
        // The gateway relays sampling, elicitation and roots to the client whose request raised them.
        capabilities: { sampling: {}, elicitation: {}, roots: {} },
        clientInfo: { name: 'mcp-gateway', version: '0.1.0' },
      },
      timeoutMs,
    );
    if (answer.error !== undefined) throw new Error(`upstream refused initialize: ${answer.error.message}`);
    this.initializeResult = answer.result as Record<string, unknown>;
    this.connection.send({ jsonrpc: '2.0', method: Method.Initialized }, undefined);
  }

  /** MCP ping, for testOnBorrow validation. */
  async ping(timeoutMs: number): Promise<boolean> {
    if (this.dead || !this.connection.healthy()) return false;
    try {
      const answer = await this.internalRequest(Method.Ping, undefined, timeoutMs);
      return answer.error === undefined;
    } catch {
      return false;
    }
  }

  /** Carries one client request; returns the id it has upstream (for a later cancellation). */
  carry(client: PooledClient, request: JsonRpcRequest, headers: MessageHeaders | undefined): string {
    const message = this.requests.carry(client, request);
    this.connection.send(message, undefined, headers);
    return message.id as string;
  }

  /** The client cancelled: the upstream is told, with the id it knows, and the request is forgotten. */
  cancel(upstreamId: string, reason: string | undefined): void {
    const cancellation = this.requests.cancel(upstreamId, reason);
    if (!cancellation) return;
    this.connection.send(cancellation, undefined);
    this.owner.settled(this);
  }

  /** A client's answer to a server request, already carrying the upstream's id. */
  answer(message: JsonRpcMessage): void {
    this.connection.send(message, undefined);
  }

  // ------------------------------------------------------------------ from the upstream

  upstreamMessage(message: JsonRpcMessage, _raw: string | undefined, related: JsonRpcId | undefined): void {
    if (isResponse(message)) {
      if (this.requests.internalAnswer(message)) return;
      const c = this.requests.answer(message); // the client's id is back in the message
      if (!c) return; // cancelled, or its client left
      const failed = 'error' in message && message.error.code === ErrorCode.UpstreamUnavailable;
      this.owner.record(!failed);
      if (!failed) this.owner.answered?.(performance.now() - c.sentAt);
      c.owner.deliverFromUpstream(message, c.id);
      this.owner.settled(this);
      return;
    }
    const method = (message as JsonRpcRequest).method;
    if (method === Method.Progress) {
      const c = this.requests.progress(message); // the client's token is back in the message
      if (c) c.owner.deliverFromUpstream(message, c.id);
      return;
    }
    const c = this.requests.attribute(related);
    if (isRequest(message)) {
      if (c) this.owner.serverRequest(this, c.owner, message, c.id);
      else {
        this.connection.send(
          errorResponse(
            message.id,
            ErrorCode.InvalidRequest,
            'The gateway cannot tell which client this request is for (pooled upstream session)',
          ),
          undefined,
        );
      }
      return;
    }
    if (method === 'notifications/message' && c) {
      if (passesLevel(message as JsonRpcRequest, c.owner.logLevel))
        c.owner.deliverFromUpstream(message, c.id);
      return;
    }
    if (method === Method.Cancelled && c) {
      c.owner.deliverFromUpstream(message, c.id);
      return;
    }
    this.owner.unattributed(this, message);
  }

  /** The connection could not send request `id` at all (see UpstreamSink.upstreamNotSent). */
  upstreamNotSent(id: JsonRpcId, why: string): void {
    const c = this.requests.find(id);
    if (!c || !this.owner.notSent) {
      // The gateway's own request, or no one to carry it elsewhere: an ordinary failure.
      this.upstreamMessage(errorResponse(id, ErrorCode.UpstreamUnavailable, why), undefined, undefined);
      return;
    }
    this.requests.forget(c.gatewayId);
    this.owner.record(false);
    this.owner.settled(this);
    // It may come from inside carry() (a closed connection fails at once): the port records the
    // request as carried when carry() returns, so it is handed back after that.
    const owner = this.owner;
    queueMicrotask(() => owner.notSent!(this, c.owner, c.id, why));
  }

  upstreamClosed(error: Error | undefined): void {
    this.dead = true;
    const why = error ? error.message : 'upstream connection closed';
    for (const c of this.requests.drain()) {
      c.owner.deliverFromUpstream(
        errorResponse(c.id, ErrorCode.UpstreamUnavailable, `Upstream unavailable: ${why}`),
        c.id,
      );
    }
    this.requests.abandonAllInternal(why);
    this.owner.record(false);
    this.owner.lost(this);
  }

  close(): Promise<void> {
    this.dead = true;
    this.connection.sink = undefined;
    return this.connection.close();
  }

  /** A request of the gateway's own (subscriptions, validation); its answer never reaches a client. */
  call(method: string, params: Record<string, unknown> | undefined, timeoutMs: number) {
    return this.internalRequest(method, params, timeoutMs);
  }

  private internalRequest(
    method: string,
    params: Record<string, unknown> | undefined,
    timeoutMs: number,
  ): Promise<InternalAnswer> {
    // Rare (handshake, validation, subscriptions): a closure here costs nothing on the hot path.
    return this.requests.internal(
      method,
      params,
      (request) => this.connection.send(request, undefined),
      timeoutMs,
    );
  }
}

/** True when a log notification is at or above the client's level (no level set: everything). */
function passesLevel(message: JsonRpcRequest, level: string | undefined): boolean {
  if (level === undefined) return true;
  const got = LOG_LEVELS.indexOf(String((message.params as { level?: unknown } | undefined)?.level));
  return got < 0 || got >= LOG_LEVELS.indexOf(level);
}
