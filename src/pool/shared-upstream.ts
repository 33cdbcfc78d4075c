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
  /** A request was answered by the upstream `ms` after it was written (upstream latency). */
  answered?(ms: number): void;
}

interface Carried {
  client: PooledClient;
  /** The client's own id, restored exactly on the answer (numbers stay numbers, strings strings). */
  id: JsonRpcId;
  /** The progress token as the upstream sees it, when the client asked for progress. */
  upstreamToken: string | undefined;
  clientToken: string | number | undefined;
  /** performance.now() when it was written to the upstream (upstream latency). */
  sentAt: number;
}

const LOG_LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

let counter = 0;
/** Ids the gateway gives client requests on a shared upstream session: unique per process. */
function carriedId(): string {
  counter++;
  return `gp-${counter.toString(36)}`;
}

/**
 * One upstream MCP session that several client sessions share (pooled mode). The gateway
 * runs its own initialize on it; every client request it carries gets a gateway id (and a
 * gateway progress token), and the answer goes back to exactly the client that asked, with
 * the client's id restored. A server→client request raised while it carries exactly one
 * request (or on that request's HTTP stream) belongs to that request's client; one that cannot
 * be attributed is refused with a JSON-RPC error, never guessed.
 */
export class SharedUpstream implements UpstreamSink {
  initializeResult: Record<string, unknown> | undefined = undefined;
  private readonly carried = new Map<string, Carried>();
  private readonly tokens = new Map<string, string>();
  private readonly internal = new Map<string, (message: JsonRpcMessage) => void>();
  dead = false;

  constructor(
    readonly connection: UpstreamConnection,
    private readonly owner: SharedUpstreamOwner,
  ) {
    connection.sink = this;
  }

  get load(): number {
    return this.carried.size;
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
    if ('error' in answer) throw new Error(`upstream refused initialize: ${answer.error.message}`);
    this.initializeResult = answer.result as Record<string, unknown>;
    this.connection.send({ jsonrpc: '2.0', method: Method.Initialized }, undefined);
  }

  /** MCP ping, for testOnBorrow validation. */
  async ping(timeoutMs: number): Promise<boolean> {
    if (this.dead || !this.connection.healthy()) return false;
    try {
      const answer = await this.internalRequest(Method.Ping, undefined, timeoutMs);
      return !('error' in answer);
    } catch {
      return false;
    }
  }

  /** Carries one client request; returns the id it has upstream (for a later cancellation). */
  carry(client: PooledClient, request: JsonRpcRequest, headers: MessageHeaders | undefined): string {
    const upstreamId = carriedId();
    let params = request.params as Record<string, unknown> | undefined;
    const meta = params?._meta as { progressToken?: string | number } | undefined;
    let upstreamToken: string | undefined;
    if (meta?.progressToken !== undefined) {
      upstreamToken = `${upstreamId}-p`;
      this.tokens.set(upstreamToken, upstreamId);
      params = { ...params, _meta: { ...meta, progressToken: upstreamToken } };
    }
    this.carried.set(upstreamId, {
      client,
      id: request.id,
      upstreamToken,
      clientToken: meta?.progressToken,
      sentAt: performance.now(),
    });
    const message: JsonRpcRequest = { jsonrpc: '2.0', id: upstreamId, method: request.method };
    if (params !== undefined) message.params = params;
    this.connection.send(message, undefined, headers);
    return upstreamId;
  }

  /** The client cancelled: the upstream is told, with the id it knows, and the request is forgotten. */
  cancel(upstreamId: string, reason: string | undefined): void {
    if (!this.forget(upstreamId)) return;
    const params: Record<string, unknown> = { requestId: upstreamId };
    if (reason !== undefined) params.reason = reason;
    this.connection.send({ jsonrpc: '2.0', method: Method.Cancelled, params }, undefined);
    this.owner.settled(this);
  }

  /** A client's answer to a server request, already carrying the upstream's id. */
  answer(message: JsonRpcMessage): void {
    this.connection.send(message, undefined);
  }

  // ------------------------------------------------------------------ from the upstream

  upstreamMessage(message: JsonRpcMessage, _raw: string | undefined, related: JsonRpcId | undefined): void {
    if (isResponse(message)) {
      const id = message.id;
      if (typeof id !== 'string') return;
      const waiter = this.internal.get(id);
      if (waiter) {
        this.internal.delete(id);
        waiter(message);
        return;
      }
      const c = this.carried.get(id);
      if (!c) return; // cancelled, or its client left
      this.forget(id);
      const failed = 'error' in message && message.error.code === ErrorCode.UpstreamUnavailable;
      this.owner.record(!failed);
      if (!failed) this.owner.answered?.(performance.now() - c.sentAt);
      c.client.deliverFromUpstream({ ...message, id: c.id } as JsonRpcMessage, c.id);
      this.owner.settled(this);
      return;
    }
    const method = (message as JsonRpcRequest).method;
    if (method === Method.Progress) {
      const params = (message as JsonRpcRequest).params as { progressToken?: unknown } | undefined;
      const owner =
        typeof params?.progressToken === 'string' ? this.tokens.get(params.progressToken) : undefined;
      const c = owner === undefined ? undefined : this.carried.get(owner);
      if (c) {
        const restored = {
          ...message,
          params: { ...params, progressToken: c.clientToken },
        } as JsonRpcMessage;
        c.client.deliverFromUpstream(restored, c.id);
      }
      return;
    }
    const c = this.attribute(related);
    if (isRequest(message)) {
      if (c) this.owner.serverRequest(this, c.client, message, c.id);
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
      if (passesLevel(message as JsonRpcRequest, c.client.logLevel))
        c.client.deliverFromUpstream(message, c.id);
      return;
    }
    if (method === Method.Cancelled && c) {
      c.client.deliverFromUpstream(message, c.id);
      return;
    }
    this.owner.unattributed(this, message);
  }

  upstreamClosed(error: Error | undefined): void {
    this.dead = true;
    const why = error ? error.message : 'upstream connection closed';
    for (const [id, c] of [...this.carried]) {
      this.forget(id);
      c.client.deliverFromUpstream(
        errorResponse(c.id, ErrorCode.UpstreamUnavailable, `Upstream unavailable: ${why}`),
        c.id,
      );
    }
    for (const [, waiter] of this.internal) waiter(errorResponse('', ErrorCode.UpstreamUnavailable, why));
    this.internal.clear();
    this.owner.record(false);
    this.owner.lost(this);
  }

  close(): Promise<void> {
    this.dead = true;
    this.connection.sink = undefined;
    return this.connection.close();
  }

  /** The request a message belongs to: named by the transport, or the only one carried. */
  private attribute(related: JsonRpcId | undefined): Carried | undefined {
    if (typeof related === 'string') {
      const c = this.carried.get(related);
      if (c) return c;
    }
    if (this.carried.size === 1) for (const c of this.carried.values()) return c;
    return undefined;
  }

  private forget(upstreamId: string): boolean {
    const c = this.carried.get(upstreamId);
    if (!c) return false;
    this.carried.delete(upstreamId);
    if (c.upstreamToken !== undefined) this.tokens.delete(c.upstreamToken);
    return true;
  }

  /** A request of the gateway's own (subscriptions, validation); its answer never reaches a client. */
  call(method: string, params: Record<string, unknown> | undefined, timeoutMs: number) {
    return this.internalRequest(method, params, timeoutMs);
  }

  private internalRequest(
    method: string,
    params: Record<string, unknown> | undefined,
    timeoutMs: number,
  ): Promise<Extract<JsonRpcMessage, { id: JsonRpcId | null; error: unknown }> | { result: unknown }> {
    const id = gatewayRequestId();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.internal.delete(id);
        reject(new Error(`upstream did not answer ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.internal.set(id, (message) => {
        clearTimeout(timer);
        resolve(message as never);
      });
      const request: JsonRpcRequest = { jsonrpc: '2.0', id, method };
      if (params !== undefined) request.params = params;
      this.connection.send(request, undefined);
    });
  }
}

/** True when a log notification is at or above the client's level (no level set: everything). */
function passesLevel(message: JsonRpcRequest, level: string | undefined): boolean {
  if (level === undefined) return true;
  const got = LOG_LEVELS.indexOf(String((message.params as { level?: unknown } | undefined)?.level));
  return got < 0 || got >= LOG_LEVELS.indexOf(level);
}
