import { Logger } from '@nestjs/common';
import {
  ErrorCode,
  errorResponse,
  type JsonRpcId,
  Method,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../../libs/protocol/src';
import type { ReplicaConfig } from '../config/gateway-config';
import type { MessageHeaders, UpstreamConnection } from '../upstream/upstream-connection';
import { onBackgroundFailure } from './background-failures';
import { PooledPort, type PooledPortHost } from './pooled-port';
import { ReplicaPool, ReplicaUnreachableError, type PoolSettings, type PoolStats } from './replica-pool';
import type { PooledClient, SharedUpstream, SharedUpstreamOwner } from './shared-upstream';
import type { UpstreamTarget } from '../telemetry/tracing/mcp-spans';
import { upstreamTargetOf } from './upstream-port';
import { ServerRequests, type Asked, type RefusedAnswer } from './server-requests';

export interface PooledServiceDeps {
  /** Replicas for a routing key in failover order, those whose breaker lets work through. */
  failoverOrder(key: string): ReplicaConfig[];
  createConnection(replica: ReplicaConfig): UpstreamConnection;
  record(replicaId: string, ok: boolean): void;
  /** The upstream-latency histogram of a replica (looked up once per pool). */
  latencyOf?(replicaId: string): { observe(ms: number): void };
  readonly settings: PoolSettings;
  readonly handshakeTimeoutMs: number;
}

/** Server→client requests the gateway remembers while the client answers; the oldest go first past this. */
const MAX_SERVER_REQUESTS = 10_000;
/**
 * The same per client session: as many as a session remembers having delivered (its own bound),
 * so an answer the session would still forward is one the service still takes.
 */
const MAX_SERVER_REQUESTS_PER_CLIENT = 1024;
/** list_changed notifications from several upstream sessions within this window reach each client once. */
const LIST_CHANGED_DEBOUNCE_MS = 50;
/** How long a client waits before retrying a request the pool could not take. */
const POOL_RETRY_AFTER_MS = 1000;

/** Methods counted by name when dropped or refused; anything else counts as `other` (a bounded label). */
const COUNTED_METHODS = new Set([
  'notifications/message',
  'notifications/progress',
  'notifications/cancelled',
  'notifications/resources/updated',
  'notifications/elicitation/complete',
  'sampling/createMessage',
  'elicitation/create',
  'roots/list',
]);

const onCarryFailure = onBackgroundFailure('pooled-service.carry');
const onUnsubscribeFailure = onBackgroundFailure('pooled-service.unsubscribe');

const LIST_CHANGED = new Set([
  'notifications/tools/list_changed',
  'notifications/resources/list_changed',
  'notifications/prompts/list_changed',
]);

/**
 * One `pooled` service: the replica pools of shared upstream sessions, and what is tracked
 * across them so that no message reaches the wrong client: resource subscribers (counted;
 * the upstream is subscribed once, on an anchor session pinned while any subscription
 * exists), server→client requests by gateway id, and the list of client ports
 * a list_changed goes to, once each.
 */
export class PooledService implements PooledPortHost {
  private readonly log: Logger;
  private readonly pools = new Map<string, ReplicaPool>();
  private readonly clients = new Set<PooledPort>();
  private readonly subscribers = new Map<string, Set<PooledPort>>();
  /** Server→client requests waiting for the one client they were sent to. */
  private readonly serverRequests = new ServerRequests<SharedUpstream, PooledClient>(
    MAX_SERVER_REQUESTS,
    MAX_SERVER_REQUESTS_PER_CLIENT,
  );
  private anchor: { pool: ReplicaPool; shared: SharedUpstream } | undefined = undefined;
  private anchoring: Promise<SharedUpstream> | undefined = undefined;
  private listChanged: Set<string> | undefined = undefined;
  /** Pool max per upstream transport kind set by S3; applies to pools created later too. */
  private readonly sizeOverrides = new Map<string, number>();
  /**
   * Upstream messages no client could be attributed (never guessed), by method: notifications
   * dropped, server requests refused. `mcp_gateway_unattributed_messages_total{method}`.
   */
  readonly unattributedMessages = new Map<string, number>();
  /**
   * Client answers to server requests that were not taken, by reason: `unknown_id` (never
   * asked, already answered, withdrawn, forgotten) and `wrong_session` (asked of another client).
   */
  readonly refusedAnswers: Record<RefusedAnswer, number> = { unknown_id: 0, wrong_session: 0 };
  /** Pool sizing for the pools of this service (changed live by reconfigure). */
  private settings: PoolSettings;

  constructor(
    readonly name: string,
    private readonly deps: PooledServiceDeps,
  ) {
    this.log = new Logger(`Pooled:${name}`);
    this.settings = deps.settings;
  }

  /**
   * The service's pool settings changed live (admin API, gateway.yaml): every pool takes them
   * at once — a changed min/max resizes it — and pools created later start with them. An
   * S3 size override for a transport kind still wins over the configured max.
   */
  reconfigure(settings: PoolSettings): void {
    this.settings = settings;
    for (const pool of this.pools.values()) pool.reconfigure(this.settingsFor(pool.replica.transport));
  }

  private settingsFor(transport: string): PoolSettings {
    const max = this.sizeOverrides.get(transport);
    return max === undefined
      ? this.settings
      : { ...this.settings, max, min: Math.min(this.settings.min, max) };
  }

  /** How long a request may wait for a checkout before it is refused. */
  get acquireTimeoutMs(): number {
    return this.settings.acquireTimeoutMs;
  }

  open(routingKey: string): PooledPort {
    const port = new PooledPort(this, routingKey);
    this.clients.add(port);
    return port;
  }

  /**
   * A port closed: forget it and drop its subscriptions. Each server request still waiting for
   * its answer gets an error answer upstream, so the upstream is not left waiting for a client
   * that is gone.
   */
  detach(port: PooledPort): void {
    this.clients.delete(port);
    for (const asked of this.serverRequests.clientGone(port)) {
      this.abandonServerRequest(asked, 'the client session it was sent to has closed');
    }
    if (port.subscriptions) {
      for (const uri of port.subscriptions)
        this.setSubscription(port, uri, false).catch(onUnsubscribeFailure);
    }
  }

  get clientCount(): number {
    return this.clients.size;
  }

  // ------------------------------------------------------------------ requests

  /**
   * Carries a client request on a session of the first replica of its failover order that is not
   * known unreachable. `tried`: replicas this request provably never reached (their start failed,
   * or the connection could not send it); it goes to the next one, whatever the request is.
   */
  carry(
    port: PooledPort,
    request: JsonRpcRequest,
    headers: MessageHeaders | undefined,
    tried?: Set<string>,
  ): void {
    const pool = this.poolFor(port.routingKey, tried);
    if (!pool) {
      port.deliverFromUpstream(
        errorResponse(
          request.id,
          ErrorCode.UpstreamUnavailable,
          `Upstream unavailable: no replica of "${this.name}" is available`,
        ),
        request.id,
      );
      return;
    }
    pool
      .checkout()
      .then(
        (shared) => {
          // Cancelled, or the client left, while it waited for a checkout: it must not run upstream.
          if (!port.stillQueued(request.id)) return pool.settle(shared);
          shared.carry(port, request, headers);
        },
        (err: Error) => {
          if (err instanceof ReplicaUnreachableError && port.stillQueued(request.id)) {
            const next = new Set(tried).add(pool.replica.id!);
            if (this.poolFor(port.routingKey, next)) return this.carry(port, request, headers, next);
          }
          port.deliverFromUpstream(this.refusal(request.id, err), request.id);
        },
      )
      .catch(onCarryFailure);
  }

  /**
   * A carried request provably never reached the upstream (the shared session's connection could
   * not send it): the client's request is carried again on the next replica.
   */
  private notSent(pool: ReplicaPool, client: PooledClient, id: JsonRpcId, why: string): void {
    const port = client as PooledPort;
    const back = port.takeBack(id);
    if (!back) return;
    const tried = new Set([pool.replica.id!]);
    if (this.poolFor(port.routingKey, tried)) {
      this.carry(port, back.request, back.headers, tried);
      return;
    }
    port.deliverFromUpstream(
      errorResponse(id, ErrorCode.UpstreamUnavailable, `Upstream unavailable: ${why}`),
      id,
    );
  }

  async initializeResult(routingKey: string): Promise<Record<string, unknown>> {
    // A replica whose upstream session cannot be started is passed over for the next one.
    const tried = new Set<string>();
    for (;;) {
      const pool = this.poolFor(routingKey, tried);
      if (!pool) throw new Error(`no replica of "${this.name}" is available`);
      try {
        return await pool.initializeResult();
      } catch (err) {
        if (!(err instanceof ReplicaUnreachableError)) throw err;
        tried.add(pool.replica.id!);
      }
    }
  }

  /**
   * A client answered a server request: back to the upstream session that asked, with its id —
   * only when it was asked of this client. Any other answer is dropped and counted (an answer to
   * another client's request is logged at warn: a session only forwards answers to ids it
   * delivered, so one reaching here is a bug or an attack), and the request still waits for the
   * answer of the client it was sent to.
   */
  answerServerRequest(port: PooledClient, response: JsonRpcResponse): void {
    const verdict = this.serverRequests.answer(port, response.id);
    if (typeof verdict === 'string') {
      this.refusedAnswers[verdict]++;
      if (verdict === 'wrong_session')
        this.log.warn(
          `dropped an answer to server request ${String(response.id)}: not asked of that client session`,
        );
      return;
    }
    verdict.upstream.answer({ ...response, id: verdict.upstreamId } as JsonRpcMessage);
  }

  /** A server request will get no answer from its client: the upstream gets an error answer instead. */
  private abandonServerRequest(asked: Asked<SharedUpstream, PooledClient>, why: string): void {
    if (asked.upstream.dead) return;
    asked.upstream.answer(errorResponse(asked.upstreamId, ErrorCode.InternalError, `Gateway: ${why}`));
  }

  settle(shared: SharedUpstream): void {
    for (const pool of this.pools.values()) {
      if (pool.owns(shared)) return pool.settle(shared);
    }
  }

  // ------------------------------------------------------------------ subscriptions

  async setSubscription(port: PooledPort, uri: string, subscribe: boolean): Promise<void> {
    let set = this.subscribers.get(uri);
    if (subscribe) {
      (port.subscriptions ??= new Set()).add(uri);
      if (set) {
        set.add(port);
        return;
      }
      set = new Set([port]);
      this.subscribers.set(uri, set);
      const anchor = await this.anchorSession();
      await anchor.call('resources/subscribe', { uri }, this.deps.handshakeTimeoutMs);
      return;
    }
    port.subscriptions?.delete(uri);
    if (!set || !set.delete(port) || set.size > 0) return;
    this.subscribers.delete(uri);
    const anchor = this.anchor?.shared;
    if (anchor) await anchor.call('resources/unsubscribe', { uri }, this.deps.handshakeTimeoutMs);
    if (this.subscribers.size === 0) this.releaseAnchor();
  }

  /** The session subscriptions live on, pinned in the primary replica's pool. */
  private anchorSession(): Promise<SharedUpstream> {
    if (this.anchor && !this.anchor.shared.dead) return Promise.resolve(this.anchor.shared);
    this.anchoring ??= (async () => {
      const pool = this.poolFor('');
      if (!pool) throw new Error(`no replica of "${this.name}" is available`);
      const shared = await pool.pin();
      this.anchor = { pool, shared };
      return shared;
    })().finally(() => (this.anchoring = undefined));
    return this.anchoring;
  }

  private releaseAnchor(): void {
    const anchor = this.anchor;
    this.anchor = undefined;
    if (anchor) anchor.pool.unpin(anchor.shared);
  }

  /** The anchor session died: subscribe every URI again on a new one. */
  private reanchor(): void {
    this.anchor = undefined;
    if (this.subscribers.size === 0) return;
    void this.anchorSession()
      .then(async (shared) => {
        for (const uri of this.subscribers.keys()) {
          await shared.call('resources/subscribe', { uri }, this.deps.handshakeTimeoutMs);
        }
      })
      .catch((err: Error) => this.log.warn(`resource subscriptions could not be renewed: ${err.message}`));
  }

  // ------------------------------------------------------------------ what the pools report

  private owner(pool: ReplicaPool): SharedUpstreamOwner {
    const latency = this.deps.latencyOf?.(pool.replica.id!);
    return {
      answered: latency === undefined ? undefined : (ms) => latency.observe(ms),
      unattributed: (shared, message) => this.unattributed(shared, message),
      refused: (method) => this.countUnattributed(method),
      withdrawn: (shared, message) => this.withdrawn(shared, message),
      exclusive: () => this.settingsFor(pool.replica.transport).maxConcurrentPerConnection === 1,
      serverRequest: (shared, client, request, related) =>
        this.routeServerRequest(shared, client, request, related),
      settled: (shared) => pool.settle(shared),
      lost: (shared) => {
        pool.lost(shared);
        if (this.anchor?.shared === shared) this.reanchor();
      },
      closed: (shared) => this.upstreamClosed(shared),
      record: (ok) => this.deps.record(pool.replica.id!, ok),
      notSent: (_shared, client, id, why) => this.notSent(pool, client, id, why),
    };
  }

  private routeServerRequest(
    shared: SharedUpstream,
    client: PooledClient,
    request: JsonRpcRequest,
    related: JsonRpcId,
  ): void {
    const { asked, evicted, replaced } = this.serverRequests.ask(shared, request.id, client, related);
    // The upstream reused the id of a request it still waited on: that one is over for its client.
    if (replaced) this.tellWithdrawn(replaced, 'the upstream replaced this request');
    if (evicted) {
      for (const old of evicted) {
        this.abandonServerRequest(old, 'too many server requests wait for an answer');
        this.tellWithdrawn(old, 'the gateway stopped waiting for this answer');
      }
    }
    client.deliverFromUpstream({ ...request, id: asked.gatewayId }, related);
  }

  /** The upstream cancelled a server request: its client is told, under the id it saw; unknown ids are dropped. */
  private withdrawn(shared: SharedUpstream, message: JsonRpcNotification): void {
    const params = message.params as { requestId?: unknown; reason?: unknown } | undefined;
    const id = params?.requestId;
    const asked =
      typeof id === 'string' || typeof id === 'number' ? this.serverRequests.withdraw(shared, id) : undefined;
    if (!asked) return this.countUnattributed(Method.Cancelled);
    this.tellWithdrawn(asked, typeof params?.reason === 'string' ? params.reason : undefined);
  }

  private tellWithdrawn(asked: Asked<SharedUpstream, PooledClient>, reason: string | undefined): void {
    const params: Record<string, unknown> = { requestId: asked.gatewayId };
    if (reason !== undefined) params.reason = reason;
    asked.client.deliverFromUpstream({ jsonrpc: '2.0', method: Method.Cancelled, params }, asked.related);
  }

  /** An upstream session ended: what it asked of clients can never be answered upstream; they are told. */
  private upstreamClosed(shared: SharedUpstream): void {
    for (const asked of this.serverRequests.upstreamGone(shared)) {
      this.tellWithdrawn(asked, 'the upstream session closed');
    }
  }

  private countUnattributed(method: string): void {
    const label = COUNTED_METHODS.has(method) ? method : 'other';
    this.unattributedMessages.set(label, (this.unattributedMessages.get(label) ?? 0) + 1);
  }

  private unattributed(_shared: SharedUpstream, message: JsonRpcMessage): void {
    const method = (message as JsonRpcRequest).method;
    if (method === 'notifications/resources/updated') {
      const uri = ((message as JsonRpcRequest).params as { uri?: unknown } | undefined)?.uri;
      const set = typeof uri === 'string' ? this.subscribers.get(uri) : undefined;
      if (set) for (const port of set) port.deliverFromUpstream(message);
      return;
    }
    if (LIST_CHANGED.has(method)) {
      if (!this.listChanged) {
        this.listChanged = new Set();
        setTimeout(() => this.flushListChanged(), LIST_CHANGED_DEBOUNCE_MS).unref();
      }
      this.listChanged.add(method);
      return;
    }
    this.countUnattributed(method);
  }

  private flushListChanged(): void {
    const methods = this.listChanged;
    this.listChanged = undefined;
    if (!methods) return;
    for (const method of methods) {
      const message: JsonRpcMessage = { jsonrpc: '2.0', method };
      for (const port of this.clients) port.deliverFromUpstream(message);
    }
  }

  /**
   * Where a session's requests go first: the primary replica of its routing key (trace
   * attributes; asked only while tracing is on). A checkout may still land on the next replica.
   */
  targetFor(routingKey: string): UpstreamTarget | undefined {
    const replica = this.deps.failoverOrder(routingKey)[0];
    return replica ? upstreamTargetOf(replica) : undefined;
  }

  // ------------------------------------------------------------------ pools

  /**
   * The pool of the first replica of the key's failover order, skipping those in `skip` and,
   * while another is left, those whose last start failed (see ReplicaPool.unreachable).
   */
  private poolFor(routingKey: string, skip?: Set<string>): ReplicaPool | undefined {
    const order = this.deps.failoverOrder(routingKey).filter((r) => !skip?.has(r.id!));
    const replica = order.find((r) => !this.pools.get(r.id!)?.unreachable) ?? order[0];
    if (!replica) return undefined;
    let pool = this.pools.get(replica.id!);
    if (!pool) {
      pool = new ReplicaPool(
        replica,
        this.settingsFor(replica.transport),
        () => this.deps.createConnection(replica),
        (p) => this.owner(p),
        this.deps.handshakeTimeoutMs,
      );
      this.pools.set(replica.id!, pool);
    }
    return pool;
  }

  /** The answer to a request the pool could not take: −31003 + retryAfterMs when exhausted, else −31001. */
  refusal(id: JsonRpcId, err: Error): JsonRpcMessage {
    const name = err.name;
    if (name === 'TimeoutError' || /max waitingClients/i.test(err.message)) {
      return errorResponse(
        id,
        ErrorCode.Overloaded,
        `Upstream pool of "${this.name}" is exhausted; retry later`,
        {
          retryAfterMs: POOL_RETRY_AFTER_MS,
        },
      );
    }
    return errorResponse(id, ErrorCode.UpstreamUnavailable, `Upstream unavailable: ${err.message}`);
  }

  stats(): PoolStats[] {
    return [...this.pools.values()].map((p) => p.stats());
  }

  /** S3 allocate_connections for an upstream transport kind: resizes the pools of replicas using it. */
  resize(transport: string, count: number): number {
    this.sizeOverrides.set(transport, count);
    let n = 0;
    for (const pool of this.pools.values()) {
      if (pool.replica.transport !== transport) continue;
      pool.resize(count);
      n++;
    }
    return n;
  }

  async stop(): Promise<void> {
    this.anchor = undefined;
    await Promise.all([...this.pools.values()].map((p) => p.stop()));
    this.pools.clear();
  }
}
