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
} from '../../libs/protocol/src';
import type { UpstreamTarget } from '../telemetry/tracing/mcp-spans';
import type { ReplicaConfig } from '../config/gateway-config';
import type {
  MessageHeaders,
  UpstreamConnection,
  UpstreamLease,
  UpstreamSink,
} from '../upstream/upstream-connection';
import { gatewayRequestId } from '../upstream/upstream-handshake';
import type { ReplaySafety } from './replay-safety';
import { upstreamTargetOf, type UpstreamPort } from './upstream-port';
import { onBackgroundFailure } from './background-failures';

const onMoveFailure = onBackgroundFailure('dedicated-port.move');

/** What a dedicated port needs from the pool: replicas in failover order, connections, health. */
export interface DedicatedPortDeps {
  /** The session's failover order right now (primary first), replicas that may take work. */
  failoverOrder(): ReplicaConfig[];
  /**
   * Opens and starts a connection on one replica (rejects when it cannot be reached). `trace`:
   * the trace context of the request it is opened for (a WebSocket upgrade carries it).
   */
  connect(replica: ReplicaConfig, trace?: MessageHeaders): Promise<UpstreamLease>;
  /** One outcome of a replica (feeds its breaker). */
  record(replicaId: string, ok: boolean): void;
  /** True when the replica should not get new work from this session (breaker open, draining, removed). */
  shouldLeave(replicaId: string): boolean;
  /** The session moved from one replica to another (metrics, logs). */
  failedOver(from: string, to: string, reason: string): void;
  /** The upstream-latency histogram of a replica (looked up when the port moves to it, not per message). */
  latencyOf?(replicaId: string): { observe(ms: number): void };
  readonly safety: ReplaySafety;
  /** How long a replayed handshake may take on the new replica. */
  readonly replayTimeoutMs: number;
}

interface SentRequest {
  message: JsonRpcRequest;
  raw: string | undefined;
  headers: MessageHeaders | undefined;
  /** performance.now() when the port took it (upstream latency). */
  sentAt: number;
}

interface Queued {
  message: JsonRpcMessage;
  raw: string | undefined;
  headers: MessageHeaders | undefined;
}

/** The answer a request gets when its replica failed mid-call and a repeat could repeat its effects. */
export const NOT_RETRIED_MESSAGE =
  'Upstream failed during the call; it was not retried on another replica because it may have had effects';

/**
 * `dedicated` mode: one upstream session per client session, on the replica the ring picks.
 * The port records what the client set up (initialize, initialized, logging level, resource
 * subscriptions) so that when its replica dies, stops answering or has its breaker opened, it
 * opens an upstream session on the next replica of the failover order, replays that set-up,
 * sends again the in-flight requests that cannot have had effects and answers the others with
 * a clear error. The client keeps its session id and sees no reconnect.
 */
export class DedicatedPort implements UpstreamPort, UpstreamSink {
  sink: UpstreamSink | undefined = undefined;
  private lease: UpstreamLease | undefined = undefined;
  private replicaId = '';
  private latency: { observe(ms: number): void } | undefined = undefined;
  private upstreamTarget: UpstreamTarget | undefined = undefined;
  private readonly sent = new Map<string, SentRequest>();
  private initialize: JsonRpcRequest | undefined = undefined;
  private initialized: JsonRpcNotification | undefined = undefined;
  private logLevel: JsonRpcRequest | undefined = undefined;
  private subscriptions: Set<string> | undefined = undefined;
  /** Internal request ids (replayed set-up) whose answers are not the client's. */
  private readonly internal = new Set<string>();
  /** Messages that arrive while the port moves to another replica. */
  private queue: Queued[] | undefined = undefined;
  private moving = false;
  private paused = false;
  private closed = false;
  private replayWaiter: { id: string; done: (ok: boolean) => void } | undefined = undefined;

  constructor(private readonly deps: DedicatedPortDeps) {}

  /** Which replica serves the session now (admin views and tests; the session never asks). */
  get replica(): string {
    return this.replicaId;
  }

  /**
   * Opens the first connection, walking the failover order. `trace`: the trace context of
   * the request that created the session.
   */
  async open(trace?: MessageHeaders): Promise<void> {
    const errors: string[] = [];
    for (const replica of this.deps.failoverOrder()) {
      try {
        this.use(await this.deps.connect(replica, trace), replica);
        return;
      } catch (err) {
        this.deps.record(replica.id!, false);
        errors.push(`${replica.id}: ${(err as Error).message}`);
      }
    }
    throw new Error(errors.length ? errors.join('; ') : 'no replica is available');
  }

  // ------------------------------------------------------------------ session → upstream

  send(message: JsonRpcMessage, raw: string | undefined, headers?: MessageHeaders): void {
    if (this.closed) return;
    this.note(message, raw, headers);
    if (this.moving) {
      (this.queue ??= []).push({ message, raw, headers });
      return;
    }
    if (isRequest(message) && this.deps.shouldLeave(this.replicaId)) {
      (this.queue ??= []).push({ message, raw, headers });
      // The request that made the session move: the new connection is opened in its trace.
      this.moveOn('replica is draining or its breaker is open', traceOf(headers)).catch(onMoveFailure);
      return;
    }
    this.lease?.connection.send(message, raw, headers);
  }

  target(): UpstreamTarget | undefined {
    return this.lease ? this.upstreamTarget : undefined;
  }

  pause(): void {
    this.paused = true;
    this.lease?.connection.pause();
  }

  resume(): void {
    this.paused = false;
    this.lease?.connection.resume();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = undefined;
    this.sent.clear();
    this.replayWaiter?.done(false);
    this.dropLease();
  }

  /** Records what a replay needs and which requests are out. */
  private note(message: JsonRpcMessage, raw: string | undefined, headers: MessageHeaders | undefined): void {
    const method = (message as JsonRpcRequest).method;
    if (method === undefined) return; // a response to a server request: nothing to record
    if (isRequest(message)) {
      this.sent.set(idKey(message.id), { message, raw, headers, sentAt: performance.now() });
      if (method === Method.Initialize) {
        this.initialize = message;
        this.initialized = undefined;
      } else if (method === 'logging/setLevel') {
        this.logLevel = message;
      } else if (method === 'resources/subscribe' || method === 'resources/unsubscribe') {
        const uri = (message.params as { uri?: unknown } | undefined)?.uri;
        if (typeof uri === 'string') {
          if (method === 'resources/subscribe') (this.subscriptions ??= new Set()).add(uri);
          else this.subscriptions?.delete(uri);
        }
      }
    } else if (method === Method.Initialized) {
      this.initialized = message as JsonRpcNotification;
    } else if (method === Method.Cancelled) {
      const id = ((message as JsonRpcNotification).params as { requestId?: unknown } | undefined)?.requestId;
      if (typeof id === 'string' || typeof id === 'number') this.sent.delete(idKey(id));
    }
  }

  // ------------------------------------------------------------------ upstream → session

  upstreamMessage(message: JsonRpcMessage, raw: string | undefined, related: JsonRpcId | undefined): void {
    if (this.closed) return;
    if (isResponse(message) && message.id !== null) {
      const id = message.id;
      if (typeof id === 'string' && this.internal.delete(id)) {
        if (this.replayWaiter?.id === id) this.replayWaiter.done(!('error' in message));
        return;
      }
      const key = idKey(id);
      const request = this.sent.get(key);
      if (request) {
        if ('error' in message && message.error.code === ErrorCode.UpstreamUnavailable) {
          // The connection could not deliver it: the replica failed, not the request.
          this.deps.record(this.replicaId, false);
          this.moveOn(message.error.message).catch(onMoveFailure);
          return;
        }
        this.sent.delete(key);
        this.deps.record(this.replicaId, true);
        this.latency?.observe(performance.now() - request.sentAt);
        if (request.message.method === 'tools/list' && 'result' in message) {
          this.deps.safety.learnTools(message.result);
        }
      }
    }
    this.sink?.upstreamMessage(message, raw, related);
  }

  upstreamClosed(error: Error | undefined): void {
    if (this.closed) return;
    this.deps.record(this.replicaId, false);
    this.moveOn(error ? error.message : 'upstream connection closed').catch(onMoveFailure);
  }

  // ------------------------------------------------------------------ failover

  /**
   * Leaves the current replica for the next one in the failover order that takes the
   * replayed handshake. Requests still out are sent again when that is safe, answered with
   * NOT_RETRIED_MESSAGE otherwise. With no replica left the session is told it is gone.
   */
  private async moveOn(reason: string, trace?: MessageHeaders): Promise<void> {
    if (this.moving || this.closed) return;
    this.moving = true;
    const from = this.replicaId;
    this.dropLease();
    const order = this.deps.failoverOrder();
    // The replica that just failed goes last: it is tried again only when nothing else is left.
    const candidates = [...order.filter((r) => r.id !== from), ...order.filter((r) => r.id === from)];
    const errors: string[] = [];
    for (const replica of candidates) {
      if (this.closed) return;
      try {
        const lease = await this.deps.connect(replica, trace);
        if (this.closed) {
          lease.release();
          return;
        }
        this.use(lease, replica);
        if (await this.replay()) {
          this.deps.failedOver(from, replica.id!, reason);
          this.resumeAfterMove();
          return;
        }
        this.deps.record(replica.id!, false);
        errors.push(`${replica.id}: handshake replay failed`);
        this.dropLease();
      } catch (err) {
        this.deps.record(replica.id!, false);
        errors.push(`${replica.id}: ${(err as Error).message}`);
      }
    }
    this.giveUp(`${reason}; no other replica could take the session (${errors.join('; ') || 'none left'})`);
  }

  /** Replays the recorded set-up on the new connection; resolves false when it was refused. */
  private replay(): Promise<boolean> {
    const init = this.initialize;
    // Never set up, or the client's own initialize is still out: it is simply sent again.
    if (!init || this.sent.has(idKey(init.id))) return Promise.resolve(true);
    const id = gatewayRequestId();
    this.internal.add(id);
    const answered = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => done(false), this.deps.replayTimeoutMs);
      const done = (ok: boolean) => {
        clearTimeout(timer);
        if (this.replayWaiter?.id === id) this.replayWaiter = undefined;
        resolve(ok);
      };
      this.replayWaiter = { id, done };
    });
    this.lease!.connection.send({ jsonrpc: '2.0', id, method: init.method, params: init.params }, undefined);
    return answered.then((ok) => {
      if (!ok || this.closed || !this.lease) return false;
      const connection = this.lease.connection;
      if (this.initialized) connection.send(this.initialized, undefined);
      if (this.logLevel && !this.sent.has(idKey(this.logLevel.id)))
        connection.send(this.internalCopy(this.logLevel), undefined);
      if (this.subscriptions) {
        for (const uri of this.subscriptions) {
          connection.send(
            this.internalCopy({ jsonrpc: '2.0', id: 0, method: 'resources/subscribe', params: { uri } }),
            undefined,
          );
        }
      }
      return true;
    });
  }

  private internalCopy(request: JsonRpcRequest): JsonRpcRequest {
    const id = gatewayRequestId();
    this.internal.add(id);
    return { jsonrpc: '2.0', id, method: request.method, params: request.params };
  }

  /** After a successful move: repeat what is safe, refuse what is not, then send what waited. */
  private resumeAfterMove(): void {
    const connection = this.lease!.connection;
    for (const [key, request] of [...this.sent]) {
      if (this.deps.safety.isSafe(request.message)) {
        connection.send(request.message, request.raw, request.headers);
      } else {
        this.sent.delete(key);
        this.sink?.upstreamMessage(
          errorResponse(request.message.id, ErrorCode.UpstreamUnavailable, NOT_RETRIED_MESSAGE),
          undefined,
          request.message.id,
        );
      }
    }
    this.moving = false;
    const queue = this.queue;
    this.queue = undefined;
    if (queue) for (const q of queue) connection.send(q.message, q.raw, q.headers);
  }

  private giveUp(reason: string): void {
    this.moving = false;
    this.queue = undefined;
    for (const [, request] of this.sent) {
      this.sink?.upstreamMessage(
        errorResponse(request.message.id, ErrorCode.UpstreamUnavailable, `Upstream unavailable: ${reason}`),
        undefined,
        request.message.id,
      );
    }
    this.sent.clear();
    this.sink?.upstreamClosed(new Error(reason));
  }

  private use(lease: UpstreamLease, replica: ReplicaConfig): void {
    this.lease = lease;
    this.replicaId = replica.id!;
    // Made once per move, not per traced request.
    this.upstreamTarget = upstreamTargetOf(lease.connection.replica);
    this.latency = this.deps.latencyOf?.(this.replicaId);
    lease.connection.sink = this;
    if (this.paused) lease.connection.pause();
  }

  private dropLease(): void {
    const lease = this.lease;
    this.lease = undefined;
    if (!lease) return;
    // A late message from the old connection must not reach the session twice.
    (lease.connection as UpstreamConnection).sink = undefined;
    lease.release();
  }
}

/** The trace context among a request's headers (session.ts puts it there while tracing is on). */
function traceOf(headers: MessageHeaders | undefined): MessageHeaders | undefined {
  const traceparent = headers?.traceparent;
  if (traceparent === undefined) return undefined;
  const tracestate = headers!.tracestate;
  return tracestate === undefined ? { traceparent } : { traceparent, tracestate };
}
