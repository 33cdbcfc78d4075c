import { Logger } from '@nestjs/common';
import {
  ErrorCode,
  errorResponse,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../../libs/protocol/src';
import type { ReplicaConfig } from '../config/gateway-config';
import type { MessageHeaders, UpstreamConnection } from '../upstream/upstream-connection';
import { PooledPort } from './pooled-port';
import { ReplicaPool, ReplicaUnreachableError, type PoolSettings, type PoolStats } from './replica-pool';
import type { PooledClient, SharedUpstream, SharedUpstreamOwner } from './shared-upstream';
import type { UpstreamTarget } from '../observability/tracing/mcp-spans';
import { upstreamTargetOf } from './upstream-port';

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
/** list_changed notifications from several upstream sessions within this window reach each client once. */
const LIST_CHANGED_DEBOUNCE_MS = 50;
/** How long a client waits before retrying a request the pool could not take. */
const POOL_RETRY_AFTER_MS = 1000;

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
export class PooledService {
  private readonly log: Logger;
  private readonly pools = new Map<string, ReplicaPool>();
  private readonly clients = new Set<PooledPort>();
  private readonly subscribers = new Map<string, Set<PooledPort>>();
  private readonly serverRequests = new Map<string, { shared: SharedUpstream; id: JsonRpcId }>();
  private serverRequestCounter = 0;
  private anchor: { pool: ReplicaPool; shared: SharedUpstream } | undefined = undefined;
  private anchoring: Promise<SharedUpstream> | undefined = undefined;
  private listChanged: Set<string> | undefined = undefined;
  /** Pool max per upstream transport kind set by S3; applies to pools created later too. */
  private readonly sizeOverrides = new Map<string, number>();
  /** Notifications no client could be found for (counted, never guessed). */
  unattributedDropped = 0;
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

  /** A port closed: forget it and drop its subscriptions. */
  detach(port: PooledPort): void {
    this.clients.delete(port);
    if (port.subscriptions) {
      for (const uri of port.subscriptions)
        void this.setSubscription(port, uri, false).catch(() => undefined);
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
    pool.checkout().then(
      (shared) => {
        // Cancelled, or the client left, while it waited for a checkout: it must not run upstream.
        if (!port.stillQueued(request.id)) return pool.settle(shared);
        const upstreamId = shared.carry(port, request, headers);
        port.carried(request, shared, upstreamId, headers);
      },
      (err: Error) => {
        if (err instanceof ReplicaUnreachableError && port.stillQueued(request.id)) {
          const next = new Set(tried).add(pool.replica.id!);
          if (this.poolFor(port.routingKey, next)) return this.carry(port, request, headers, next);
        }
        port.deliverFromUpstream(this.refusal(request.id, err), request.id);
      },
    );
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

  /** A client answered a server request: back to the upstream session that asked, with its id. */
  answerServerRequest(response: JsonRpcResponse): void {
    if (typeof response.id !== 'string') return;
    const asked = this.serverRequests.get(response.id);
    if (!asked) return;
    this.serverRequests.delete(response.id);
    asked.shared.answer({ ...response, id: asked.id } as JsonRpcMessage);
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
      serverRequest: (shared, client, request, related) =>
        this.routeServerRequest(shared, client, request, related),
      settled: (shared) => pool.settle(shared),
      lost: (shared) => {
        pool.lost(shared);
        if (this.anchor?.shared === shared) this.reanchor();
      },
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
    this.serverRequestCounter++;
    const id = `gs-${this.serverRequestCounter.toString(36)}`;
    this.serverRequests.set(id, { shared, id: request.id });
    if (this.serverRequests.size > MAX_SERVER_REQUESTS) {
      this.serverRequests.delete(this.serverRequests.keys().next().value as string);
    }
    client.deliverFromUpstream({ ...request, id }, related);
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
    this.unattributedDropped++;
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
