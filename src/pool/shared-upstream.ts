import {
  ErrorCode,
  errorResponse,
  isRequest,
  isResponse,
  LATEST_SESSION_PROTOCOL,
  Method,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
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
  /**
   * Request `id` of this client is carried here under `upstreamId` (so a cancellation finds it).
   * Told before the request is written: an answer the connection gives while writing it (a
   * refusal) must find the entry to clear, not be followed by it.
   */
  carried(
    request: JsonRpcRequest,
    shared: SharedUpstream,
    upstreamId: string,
    headers?: MessageHeaders,
  ): void;
}

/** Where a shared upstream reports what no single request owns (subscriptions, list changes, server requests). */
export interface SharedUpstreamOwner {
  /**
   * A notification no request of this session names: routed by what the gateway tracked
   * (resources/updated, list_changed) or dropped and counted.
   */
  unattributed(shared: SharedUpstream, message: JsonRpcMessage): void;
  /** A server request that could not be attributed was refused (counted by method). */
  refused(method: string): void;
  /** The upstream withdrew one of its server requests (notifications/cancelled). */
  withdrawn(shared: SharedUpstream, message: JsonRpcNotification): void;
  /**
   * True while the pool lends a session to one client request at a time
   * (maxConcurrentPerConnection 1): a server request on it belongs to the request holding it.
   */
  exclusive(): boolean;
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
  /** The session ended (lost, or closed by the pool): nothing it asked of clients can be answered any more. */
  closed(shared: SharedUpstream): void;
  /** One outcome of the replica (feeds its breaker). */
  record(ok: boolean): void;
  /** A carried client request provably never reached the upstream: the owner may carry it elsewhere. */
  notSent?(shared: SharedUpstream, client: PooledClient, id: JsonRpcId, why: string): void;
  /** A request was answered by the upstream `ms` after it was written (upstream latency). */
  answered?(ms: number): void;
}

/** Notifications routed by what the gateway tracked, whichever stream they came on. */
const TRACKED = new Set([
  'notifications/resources/updated',
  'notifications/tools/list_changed',
  'notifications/resources/list_changed',
  'notifications/prompts/list_changed',
]);

const LOG_LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

/** Upstream transports that say which request a message belongs to (its HTTP response stream, the SDK's relatedRequestId). */
const NAMES_REQUESTS = new Set(['streamable-http', 'embedded']);

/**
 * One upstream MCP session that several client sessions share (pooled mode). The gateway
 * runs its own initialize on it; every client request it carries gets a gateway id (and a
 * gateway progress token) from the request multiplexer, and the answer goes back to exactly the
 * client that asked, with the client's id restored.
 *
 * Everything else the upstream sends is attributed by an explicit relation only, never by
 * "the one request carried at that moment":
 * - progress: by its (gateway) progress token;
 * - anything on a request's own stream (the transport names the request): that request's client;
 * - a server request on a session lent exclusively (maxConcurrentPerConnection 1) over a
 *   transport that cannot name requests (stdio, WebSocket, legacy SSE): the request holding it —
 *   until a request ends there without its answer (cancelled, timed out, its client left), after
 *   which whatever it may still raise could land on the next holder: the session is `retired`;
 * - notifications/cancelled: by the server request it names (remapped by the owner);
 * - resources/updated and list_changed: by what the gateway tracked (the owner).
 * A server request that cannot be attributed is refused with a JSON-RPC error; any other
 * message is dropped and counted.
 */
export class SharedUpstream implements UpstreamSink {
  initializeResult: Record<string, unknown> | undefined = undefined;
  /** Client requests carried here (owners: the pooled ports) and the gateway's own. */
  private readonly requests = new RequestMultiplexer<PooledClient>('gp-', gatewayRequestId);
  dead = false;
  /**
   * A request ended here without its answer (cancelled, timed out, its client left) on a
   * transport that cannot name requests: what it may still raise could arrive while another
   * request holds the session, so exclusive checkout no longer attributes anything here.
   */
  private tainted = false;
  /** The transport names the request of what arrives on a request's stream. */
  private readonly namesRequests: boolean;

  constructor(
    readonly connection: UpstreamConnection,
    private readonly owner: SharedUpstreamOwner,
  ) {
    connection.sink = this;
    this.namesRequests = NAMES_REQUESTS.has(connection.kind);
  }

  get load(): number {
    return this.requests.size;
  }

  /**
   * Tainted while the pool lends sessions exclusively: it is replaced once it carries nothing,
   * instead of being lent again (see the class comment).
   */
  get retired(): boolean {
    return this.tainted && this.owner.exclusive();
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

  /**
   * Carries one client request. The client learns the id it has upstream before it is written;
   * a connection that throws instead of answering through the sink (it must not) still leaves
   * nothing behind: the request is forgotten and answered with an error.
   */
  carry(client: PooledClient, request: JsonRpcRequest, headers: MessageHeaders | undefined): void {
    const message = this.requests.carry(client, request);
    const upstreamId = message.id as string;
    client.carried(request, this, upstreamId, headers);
    try {
      this.connection.send(message, undefined, headers);
    } catch (err) {
      const c = this.requests.forget(upstreamId);
      if (c) {
        this.owner.record(false);
        c.owner.deliverFromUpstream(
          errorResponse(
            c.id,
            ErrorCode.UpstreamUnavailable,
            `Upstream unavailable: ${(err as Error).message}`,
          ),
          c.id,
        );
      }
      this.owner.settled(this);
    }
  }

  /** The client cancelled: the upstream is told, with the id it knows, and the request is forgotten. */
  cancel(upstreamId: string, reason: string | undefined): void {
    const cancellation = this.requests.cancel(upstreamId, reason);
    if (!cancellation) return;
    // Its handler may still be running, or have raised a request already on its way: on an
    // exclusive session that would be taken for the next holder's. (Marked whatever the pool's
    // setting now: it may change live to exclusive while this session lives.)
    if (!this.namesRequests) this.tainted = true;
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
      else this.owner.unattributed(this, message);
      return;
    }
    // The transport named the request: the message came on that request's own stream.
    const named = this.requests.find(related);
    if (isRequest(message)) {
      if (method === Method.Ping) {
        // The gateway is this session's client: it answers for itself.
        this.connection.send({ jsonrpc: '2.0', id: message.id, result: {} }, undefined);
        return;
      }
      const c = named ?? (this.attributesByCheckout() ? this.requests.sole() : undefined);
      if (c) {
        this.owner.serverRequest(this, c.owner, message, c.id);
        return;
      }
      this.owner.refused(method);
      this.connection.send(
        errorResponse(
          message.id,
          ErrorCode.InvalidRequest,
          'The gateway cannot tell which client this request is for (pooled upstream session)',
        ),
        undefined,
      );
      return;
    }
    if (method === Method.Cancelled) {
      this.owner.withdrawn(this, message as JsonRpcNotification);
      return;
    }
    if (named && !TRACKED.has(method)) {
      if (method !== 'notifications/message' || passesLevel(message as JsonRpcRequest, named.owner.logLevel))
        named.owner.deliverFromUpstream(message, named.id);
      return;
    }
    this.owner.unattributed(this, message);
  }

  /**
   * True when a server request may be given to the request holding this session: it is lent to
   * one request at a time, the transport cannot name requests itself, and no request ended here
   * without its answer.
   */
  private attributesByCheckout(): boolean {
    return !this.namesRequests && !this.tainted && this.owner.exclusive();
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
    // It may come from inside carry() (a closed connection fails at once): handed back after the
    // current call returns, so the service never re-enters carry() from within it.
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
    this.owner.closed(this);
  }

  close(): Promise<void> {
    if (!this.dead) {
      this.dead = true;
      this.owner.closed(this);
    }
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
