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
  /**
   * How long a connection the session moved away from (drain, breaker, failure) is kept for the
   * requests it still carries; past it they are answered DRAIN_GRACE_MESSAGE (or sent again when safe).
   */
  readonly drainGraceMs: number;
}

interface SentRequest {
  message: JsonRpcRequest;
  raw: string | undefined;
  headers: MessageHeaders | undefined;
  /** performance.now() when it was written (upstream latency). */
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

/** The answer a request gets when the replica it was on was drained and did not answer within the drain grace. */
export const DRAIN_GRACE_MESSAGE =
  'The replica serving the call was drained and did not answer within the drain grace; it was not retried on another replica because it may have had effects';

/**
 * One upstream connection of a port and the client requests written to it that are not answered
 * yet. The port has one current leg; a leg it moved away from keeps serving what it carries
 * ("retiring") until that is answered, it fails, or the drain grace passes.
 */
class Leg implements UpstreamSink {
  /** Client requests written here and not answered yet, by idKey. */
  readonly sent = new Map<string, SentRequest>();
  /** Ids (idKey) of server→client requests this leg raised while retiring: their answers come back here. */
  asked: Set<string> | undefined = undefined;
  retiring = false;
  /** The session left it because it failed (not a drain or an opened breaker). */
  failed = false;
  graceTimer: NodeJS.Timeout | undefined = undefined;
  released = false;

  constructor(
    readonly port: DedicatedPort,
    readonly lease: UpstreamLease,
    readonly replicaId: string,
  ) {}

  get connection(): UpstreamConnection {
    return this.lease.connection;
  }

  write(message: JsonRpcMessage, raw: string | undefined, headers: MessageHeaders | undefined): void {
    if (isRequest(message)) {
      this.sent.set(idKey(message.id), { message, raw, headers, sentAt: performance.now() });
    }
    this.lease.connection.send(message, raw, headers);
  }

  upstreamMessage(message: JsonRpcMessage, raw: string | undefined, related: JsonRpcId | undefined): void {
    this.port.legMessage(this, message, raw, related);
  }

  upstreamClosed(error: Error | undefined): void {
    this.port.legClosed(this, error);
  }

  upstreamNotSent(id: JsonRpcId, why: string): void {
    this.port.legNotSent(this, id, why);
  }
}

function graceExpired(leg: Leg): void {
  leg.graceTimer = undefined;
  leg.port.graceExpired(leg);
}

/**
 * `dedicated` mode: one upstream session per client session, on the replica the ring picks.
 * The port records what the client set up (initialize, initialized, logging level, resource
 * subscriptions) so that when it leaves its replica it opens an upstream session on the next
 * replica of the failover order and replays that set-up there. The client keeps its session id
 * and sees no reconnect.
 *
 * Why it leaves decides what happens to the requests it had sent:
 * - a request that provably never reached the upstream (connect refused, DNS, TLS, a process that
 *   could not spawn, a WebSocket that was not open) goes to the next replica whatever it is;
 * - when the connection failed with requests out, those that cannot have had effects are sent
 *   again on the next replica, the others get NOT_RETRIED_MESSAGE;
 * - a drain or an opened breaker is not a failure: the old connection keeps serving the requests
 *   it has until they are answered or the drain grace passes (then: DRAIN_GRACE_MESSAGE, or sent
 *   again when safe), while every new request goes to the new replica.
 * Requests that arrive while the port moves wait in a queue and are written once, to the new
 * replica; nothing is recorded as sent before it is written.
 */
export class DedicatedPort implements UpstreamPort {
  sink: UpstreamSink | undefined = undefined;
  private current: Leg | undefined = undefined;
  private readonly retiring = new Set<Leg>();
  private latency: { observe(ms: number): void } | undefined = undefined;
  private upstreamTarget: UpstreamTarget | undefined = undefined;
  private initialize: JsonRpcRequest | undefined = undefined;
  private initialized: JsonRpcNotification | undefined = undefined;
  private logLevel: JsonRpcRequest | undefined = undefined;
  private subscriptions: Set<string> | undefined = undefined;
  /** Internal request ids (replayed set-up) whose answers are not the client's. */
  private readonly internal = new Set<string>();
  /** Messages that wait for the port to be on a replica that takes them (written once, in order). */
  private queue: Queued[] | undefined = undefined;
  private moving = false;
  private paused = false;
  private closed = false;
  private replayWaiter: { id: string; done: (ok: boolean) => void } | undefined = undefined;

  constructor(private readonly deps: DedicatedPortDeps) {}

  /** Which replica serves the session now (admin views and tests; the session never asks). */
  get replica(): string {
    return this.current?.replicaId ?? '';
  }

  /** Connections kept for requests still out on replicas the session left (tests, admin views). */
  get retiringCount(): number {
    return this.retiring.size;
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
    const method = (message as JsonRpcRequest).method;
    if (method === undefined) {
      // An answer to a server→client request: to the connection that asked.
      const id = (message as { id?: JsonRpcId }).id;
      const asker = id === undefined || id === null ? undefined : this.askerOf(idKey(id));
      if (asker) asker.connection.send(message, raw, headers);
      else if (this.moving || !this.current) (this.queue ??= []).push({ message, raw, headers });
      else this.current.connection.send(message, raw, headers);
      return;
    }
    if (method === Method.Cancelled && this.cancel(message as JsonRpcNotification, raw, headers)) return;
    if (this.moving || !this.current) {
      (this.queue ??= []).push({ message, raw, headers });
      return;
    }
    if (isRequest(message) && this.deps.shouldLeave(this.current.replicaId)) {
      (this.queue ??= []).push({ message, raw, headers });
      // The request that made the session move: the new connection is opened in its trace.
      this.moveOn('replica is draining or its breaker is open', false, traceOf(headers)).catch(onMoveFailure);
      return;
    }
    this.write(this.current, message, raw, headers);
  }

  target(): UpstreamTarget | undefined {
    return this.current ? this.upstreamTarget : undefined;
  }

  pause(): void {
    this.paused = true;
    this.current?.connection.pause();
    for (const leg of this.retiring) leg.connection.pause();
  }

  resume(): void {
    this.paused = false;
    this.current?.connection.resume();
    for (const leg of this.retiring) leg.connection.resume();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = undefined;
    this.replayWaiter?.done(false);
    const current = this.current;
    this.current = undefined;
    if (current) this.release(current);
    for (const leg of [...this.retiring]) this.release(leg);
  }

  /** Writes a message to a leg, recording what a replay needs. */
  private write(
    leg: Leg,
    message: JsonRpcMessage,
    raw: string | undefined,
    headers: MessageHeaders | undefined,
  ): void {
    if (isRequest(message)) {
      const method = message.method;
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
    } else if ((message as JsonRpcNotification).method === Method.Initialized) {
      this.initialized = message as JsonRpcNotification;
    }
    leg.write(message, raw, headers);
  }

  /**
   * A client's notifications/cancelled: a request still queued is simply dropped (it was never
   * sent, so the upstream hears nothing); one out on a leg is forgotten and the cancellation goes
   * to that leg. Returns true when it was handled here.
   */
  private cancel(message: JsonRpcNotification, raw: string | undefined, headers: MessageHeaders | undefined) {
    const id = (message.params as { requestId?: unknown } | undefined)?.requestId;
    if (typeof id !== 'string' && typeof id !== 'number') return false;
    const key = idKey(id);
    if (this.queue) {
      const at = this.queue.findIndex((q) => isRequest(q.message) && idKey(q.message.id) === key);
      if (at !== -1) {
        this.queue.splice(at, 1);
        return true;
      }
    }
    for (const leg of this.legs()) {
      if (leg.sent.delete(key)) {
        leg.connection.send(message, raw, headers);
        if (leg.retiring) this.settleRetiring(leg);
        return true;
      }
    }
    return false;
  }

  private askerOf(key: string): Leg | undefined {
    for (const leg of this.retiring) {
      if (leg.asked?.delete(key)) return leg;
    }
    return undefined;
  }

  private *legs(): Iterable<Leg> {
    if (this.current) yield this.current;
    yield* this.retiring;
  }

  // ------------------------------------------------------------------ upstream → session

  legMessage(
    leg: Leg,
    message: JsonRpcMessage,
    raw: string | undefined,
    related: JsonRpcId | undefined,
  ): void {
    if (this.closed || leg.released) return;
    if (isResponse(message) && message.id !== null) {
      const id = message.id;
      if (typeof id === 'string' && this.internal.delete(id)) {
        if (this.replayWaiter?.id === id) this.replayWaiter.done(!('error' in message));
        return;
      }
      const key = idKey(id);
      const request = leg.sent.get(key);
      if (request) {
        leg.sent.delete(key);
        if ('error' in message && message.error.code === ErrorCode.UpstreamUnavailable) {
          // The connection could not deliver the answer: the replica failed, not the request.
          this.deps.record(leg.replicaId, false);
          this.lostInFlight(request, NOT_RETRIED_MESSAGE);
          if (leg === this.current) this.moveOn(message.error.message, true).catch(onMoveFailure);
          else this.settleRetiring(leg);
          return;
        }
        this.deps.record(leg.replicaId, true);
        if (leg === this.current) this.latency?.observe(performance.now() - request.sentAt);
        if (request.message.method === 'tools/list' && 'result' in message) {
          this.deps.safety.learnTools(message.result);
        }
        this.sink?.upstreamMessage(message, raw, related);
        if (leg.retiring) this.settleRetiring(leg);
        return;
      }
    } else if (leg.retiring && isRequest(message)) {
      // Raised by a call the old replica still serves: the client's answer must go back there.
      (leg.asked ??= new Set()).add(idKey(message.id));
    }
    this.sink?.upstreamMessage(message, raw, related);
  }

  /** The connection never delivered request `id`: it goes to the next replica, whatever it is. */
  legNotSent(leg: Leg, id: JsonRpcId, why: string): void {
    if (this.closed || leg.released) return;
    if (typeof id === 'string' && this.internal.delete(id)) {
      // The replayed set-up could not be sent: this replica will not take the session.
      if (this.replayWaiter?.id === id) this.replayWaiter.done(false);
      return;
    }
    const key = idKey(id);
    const request = leg.sent.get(key);
    if (!request) return;
    leg.sent.delete(key);
    this.deps.record(leg.replicaId, false);
    this.requeue(request);
    if (leg === this.current) this.moveOn(why, true).catch(onMoveFailure);
    else {
      this.settleRetiring(leg);
      if (!this.moving && this.current) this.flushQueue(this.current);
    }
  }

  legClosed(leg: Leg, error: Error | undefined): void {
    if (this.closed || leg.released) return;
    const why = error ? error.message : 'upstream connection closed';
    if (leg === this.current) {
      this.deps.record(leg.replicaId, false);
      this.moveOn(why, true).catch(onMoveFailure);
      return;
    }
    // A retiring connection went away: whatever it still had will not be answered there.
    for (const request of leg.sent.values()) this.lostInFlight(request, NOT_RETRIED_MESSAGE);
    leg.sent.clear();
    this.release(leg);
    if (!this.moving && this.current) this.flushQueue(this.current);
  }

  /** The drain grace passed with requests still out on a retiring leg. */
  graceExpired(leg: Leg): void {
    if (this.closed || leg.released) return;
    const why = leg.failed ? NOT_RETRIED_MESSAGE : DRAIN_GRACE_MESSAGE;
    for (const request of leg.sent.values()) this.lostInFlight(request, why);
    leg.sent.clear();
    this.release(leg);
    if (!this.moving && this.current) this.flushQueue(this.current);
  }

  /**
   * A request that was out on a connection that can no longer answer it: sent again (once, to the
   * replica the session is on or moves to) when a repeat cannot have effects, else answered `why`.
   */
  private lostInFlight(request: SentRequest, why: string): void {
    if (this.deps.safety.isSafe(request.message)) {
      this.requeue(request);
      return;
    }
    this.sink?.upstreamMessage(
      errorResponse(request.message.id, ErrorCode.UpstreamUnavailable, why),
      undefined,
      request.message.id,
    );
  }

  /** Puts a request back ahead of what waits (it came first). */
  private requeue(request: SentRequest): void {
    (this.queue ??= []).unshift({ message: request.message, raw: request.raw, headers: request.headers });
  }

  // ------------------------------------------------------------------ failover

  /**
   * Leaves the current replica for the next one in the failover order that takes the replayed
   * handshake. `failed`: the replica failed (it goes last among the candidates); otherwise it was
   * drained or its breaker opened. Either way the old connection is kept for what it still
   * carries (see retire()); what waits in the queue is written to the new one. With no replica
   * left the session is told it is gone.
   */
  private async moveOn(reason: string, failed: boolean, trace?: MessageHeaders): Promise<void> {
    if (this.moving || this.closed) return;
    const old = this.current;
    const from = old?.replicaId ?? '';
    const order = this.deps.failoverOrder();
    const others = order.filter((r) => r.id !== from);
    if (!failed && old && others.length === 0) {
      // Drained or breaker open, but no other replica can take the session: it stays.
      this.flushQueue(old);
      return;
    }
    this.moving = true;
    this.current = undefined;
    if (old) {
      old.failed = failed;
      this.retire(old);
    }
    // The replica that just failed goes last: it is tried again only when nothing else is left.
    const candidates = [...others, ...(failed ? order.filter((r) => r.id === from) : [])];
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
          this.moving = false;
          this.flushQueue(this.current!);
          return;
        }
        this.deps.record(replica.id!, false);
        errors.push(`${replica.id}: handshake replay failed`);
        const leg = this.current;
        this.current = undefined;
        if (leg) this.release(leg);
      } catch (err) {
        this.deps.record(replica.id!, false);
        errors.push(`${replica.id}: ${(err as Error).message}`);
      }
    }
    this.giveUp(`${reason}; no other replica could take the session (${errors.join('; ') || 'none left'})`);
  }

  /**
   * Keeps a connection the session left while it still carries requests, for at most the drain
   * grace; one with nothing out is released at once.
   */
  private retire(leg: Leg): void {
    leg.retiring = true;
    this.retiring.add(leg);
    if (leg.sent.size === 0) {
      this.release(leg);
      return;
    }
    leg.graceTimer = setTimeout(graceExpired, this.deps.drainGraceMs, leg);
    leg.graceTimer.unref?.();
  }

  /** A retiring leg that has nothing left out is released. */
  private settleRetiring(leg: Leg): void {
    if (leg.retiring && leg.sent.size === 0 && !leg.released) this.release(leg);
  }

  /** Replays the recorded set-up on the new connection; resolves false when it was refused. */
  private replay(): Promise<boolean> {
    const init = this.initialize;
    // Never set up, or the client's own initialize waits in the queue: it is simply sent there.
    if (!init || this.queue?.some((q) => q.message === init)) return Promise.resolve(true);
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
    this.current!.connection.send(
      { jsonrpc: '2.0', id, method: init.method, params: init.params },
      undefined,
    );
    return answered.then((ok) => {
      if (!ok || this.closed || !this.current) return false;
      const connection = this.current.connection;
      if (this.initialized) connection.send(this.initialized, undefined);
      const queuedLevel = this.logLevel && this.queue?.some((q) => q.message === this.logLevel);
      if (this.logLevel && !queuedLevel) connection.send(this.internalCopy(this.logLevel), undefined);
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

  /** Writes what waited, in order, to the leg the session is on now. */
  private flushQueue(leg: Leg): void {
    const queue = this.queue;
    this.queue = undefined;
    if (queue) for (const q of queue) this.write(leg, q.message, q.raw, q.headers);
  }

  private giveUp(reason: string): void {
    this.moving = false;
    const queue = this.queue;
    this.queue = undefined;
    for (const q of queue ?? []) {
      if (!isRequest(q.message)) continue;
      this.sink?.upstreamMessage(
        errorResponse(q.message.id, ErrorCode.UpstreamUnavailable, `Upstream unavailable: ${reason}`),
        undefined,
        q.message.id,
      );
    }
    this.sink?.upstreamClosed(new Error(reason));
  }

  private use(lease: UpstreamLease, replica: ReplicaConfig): void {
    const leg = new Leg(this, lease, replica.id!);
    this.current = leg;
    // Made once per move, not per traced request.
    this.upstreamTarget = upstreamTargetOf(lease.connection.replica);
    this.latency = this.deps.latencyOf?.(leg.replicaId);
    lease.connection.sink = leg;
    if (this.paused) lease.connection.pause();
  }

  private release(leg: Leg): void {
    if (leg.released) return;
    leg.released = true;
    this.retiring.delete(leg);
    if (leg.graceTimer !== undefined) clearTimeout(leg.graceTimer);
    leg.graceTimer = undefined;
    // A late message from the old connection must not reach the session.
    (leg.lease.connection as UpstreamConnection).sink = undefined;
    leg.lease.release();
  }
}

/** The trace context among a request's headers (session.ts puts it there while tracing is on). */
function traceOf(headers: MessageHeaders | undefined): MessageHeaders | undefined {
  const traceparent = headers?.traceparent;
  if (traceparent === undefined) return undefined;
  const tracestate = headers!.tracestate;
  return tracestate === undefined ? { traceparent } : { traceparent, tracestate };
}
