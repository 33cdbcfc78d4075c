import {
  ErrorCode,
  errorResponse,
  idKey,
  isRequest,
  isResponse,
  Method,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../../libs/protocol/src';
import type { MessageHeaders, UpstreamSink } from '../upstream/upstream-connection';
import type { PooledClient, SharedUpstream } from './shared-upstream';
import type { UpstreamPort } from './upstream-port';
import type { UpstreamTarget } from '../telemetry/tracing/mcp-spans';
import { onBackgroundFailure } from './background-failures';

/**
 * What a pooled port asks of the service it belongs to (PooledService): declared here, so the port
 * needs no import of the service that creates it.
 */
export interface PooledPortHost {
  readonly acquireTimeoutMs: number;
  targetFor(routingKey: string): UpstreamTarget | undefined;
  initializeResult(routingKey: string): Promise<Record<string, unknown>>;
  setSubscription(port: PooledPort, uri: string, subscribe: boolean): Promise<void>;
  carry(port: PooledPort, request: JsonRpcRequest, headers: MessageHeaders | undefined): void;
  answerServerRequest(port: PooledPort, response: JsonRpcResponse): void;
  refusal(id: JsonRpcId, err: Error): JsonRpcMessage;
  detach(port: PooledPort): void;
}

interface Outstanding {
  /** undefined while the request waits for a checkout. */
  shared: SharedUpstream | undefined;
  upstreamId: string;
  /** The request as the client sent it, while carried (carried again elsewhere if it was never sent). */
  request: JsonRpcRequest | undefined;
  headers: MessageHeaders | undefined;
}

/** The entry of a request waiting for a checkout (shared: nothing of it is per request). */
const QUEUED: Outstanding = { shared: undefined, upstreamId: '', request: undefined, headers: undefined };

const onInitializeFailure = onBackgroundFailure('pooled-port.initialize');
const onSubscriptionFailure = onBackgroundFailure('pooled-port.subscription');

/**
 * `pooled` mode: the session's port owns no upstream session. Each request is carried by a
 * shared upstream session checked out for it; the session-level state the upstream would
 * have kept (initialize, logging level, subscriptions) is kept here and answered by the
 * gateway, so that no upstream session holds anything of one client.
 */
export class PooledPort implements UpstreamPort, PooledClient {
  sink: UpstreamSink | undefined = undefined;
  /** Messages of a request come with its id (see SharedUpstream); the rest are the session's. */
  readonly attributesAll = true;
  logLevel: string | undefined = undefined;
  /** Client request id (idKey) → where it is being carried. Allocated on first request. */
  private outstanding: Map<string, Outstanding> | undefined = undefined;
  subscriptions: Set<string> | undefined = undefined;
  private closed = false;

  constructor(
    private readonly service: PooledPortHost,
    readonly routingKey: string,
  ) {}

  target(): UpstreamTarget | undefined {
    return this.service.targetFor(this.routingKey);
  }

  send(message: JsonRpcMessage, _raw: string | undefined, headers?: MessageHeaders): void {
    if (this.closed) return;
    if (isRequest(message)) {
      this.request(message, headers);
    } else if (isResponse(message)) {
      this.service.answerServerRequest(this, message);
    } else {
      this.notification(message as JsonRpcNotification);
    }
  }

  private request(message: JsonRpcRequest, headers: MessageHeaders | undefined): void {
    switch (message.method) {
      case Method.Initialize:
        this.service
          .initializeResult(this.routingKey)
          .then(
            (result) => this.reply(message, this.initializeAnswer(message, result)),
            // An exhausted pool (no upstream session ever started, none free) is −31003 with retryAfterMs.
            (err: Error) => this.deliverFromUpstream(this.service.refusal(message.id, err)),
          )
          .catch(onInitializeFailure);
        return;
      case Method.Ping:
        this.reply(message, {});
        return;
      case 'logging/setLevel': {
        const level = (message.params as { level?: unknown } | undefined)?.level;
        if (typeof level !== 'string') {
          this.deliverFromUpstream(
            errorResponse(message.id, ErrorCode.InvalidParams, 'level must be a string'),
          );
          return;
        }
        this.logLevel = level;
        this.reply(message, {});
        return;
      }
      case 'resources/subscribe':
      case 'resources/unsubscribe': {
        const uri = (message.params as { uri?: unknown } | undefined)?.uri;
        if (typeof uri !== 'string') {
          this.deliverFromUpstream(
            errorResponse(message.id, ErrorCode.InvalidParams, 'uri must be a string'),
          );
          return;
        }
        const subscribe = message.method === 'resources/subscribe';
        this.service
          .setSubscription(this, uri, subscribe)
          .then(
            () => this.reply(message, {}),
            (err: Error) => this.fail(message, err.message),
          )
          .catch(onSubscriptionFailure);
        return;
      }
    }
    (this.outstanding ??= new Map()).set(idKey(message.id), QUEUED);
    this.service.carry(this, message, headers);
  }

  /** False once the request was cancelled (or the port closed) while it waited for a checkout. */
  stillQueued(id: JsonRpcId): boolean {
    return !this.closed && this.outstanding?.get(idKey(id)) === QUEUED;
  }

  checkoutWait(id: JsonRpcId): number {
    return this.stillQueued(id) ? this.service.acquireTimeoutMs : 0;
  }

  private notification(message: JsonRpcNotification): void {
    if (message.method !== Method.Cancelled) return; // initialized and the client's list changes stay here
    const id = (message.params as { requestId?: unknown } | undefined)?.requestId;
    if (typeof id !== 'string' && typeof id !== 'number') return;
    const out = this.outstanding?.get(idKey(id));
    if (!out) return;
    this.outstanding!.delete(idKey(id));
    // Still queued: deleting the entry is enough, the request is never sent.
    out.shared?.cancel(out.upstreamId, (message.params as { reason?: string }).reason);
  }

  /**
   * A shared upstream session carries the request: remember where, so a cancellation finds it.
   * Told before the request is written, so an answer that comes while it is written clears it.
   */
  carried(
    request: JsonRpcRequest,
    shared: SharedUpstream,
    upstreamId: string,
    headers?: MessageHeaders,
  ): void {
    if (this.closed) return;
    (this.outstanding ??= new Map()).set(idKey(request.id), { shared, upstreamId, request, headers });
  }

  /** Requests queued or carried and not yet answered, cancelled or failed. */
  get outstandingCount(): number {
    return this.outstanding?.size ?? 0;
  }

  /**
   * A carried request never reached its upstream: it is waiting for a checkout again, and is
   * returned for the service to carry elsewhere (undefined when it was cancelled or answered).
   */
  takeBack(id: JsonRpcId): { request: JsonRpcRequest; headers: MessageHeaders | undefined } | undefined {
    const out = this.closed ? undefined : this.outstanding?.get(idKey(id));
    if (!out?.request) return undefined;
    this.outstanding!.set(idKey(id), QUEUED);
    return { request: out.request, headers: out.headers };
  }

  deliverFromUpstream(message: JsonRpcMessage, related?: JsonRpcId): void {
    if (this.closed) return;
    if (isResponse(message) && message.id !== null) this.outstanding?.delete(idKey(message.id));
    this.sink?.upstreamMessage(message, undefined, related);
  }

  pause(): void {
    // Shared upstream sessions serve many clients: one slow reader must not stall them. The
    // session's outbox bound is what protects memory here.
  }

  resume(): void {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.outstanding) {
      for (const out of this.outstanding.values())
        out.shared?.cancel(out.upstreamId, 'client session closed');
      this.outstanding = undefined;
    }
    this.service.detach(this);
  }

  private initializeAnswer(
    message: JsonRpcRequest,
    cached: Record<string, unknown>,
  ): Record<string, unknown> {
    // The shared upstream negotiated its own version; a client asking an older one is told the
    // upstream's and decides, as the specification has clients do.
    void message;
    return cached;
  }

  private reply(request: JsonRpcRequest, result: unknown): void {
    this.deliverFromUpstream({ jsonrpc: '2.0', id: request.id, result });
  }

  private fail(request: JsonRpcRequest, reason: string): void {
    this.deliverFromUpstream(
      errorResponse(request.id, ErrorCode.UpstreamUnavailable, `Upstream unavailable: ${reason}`),
    );
  }
}
