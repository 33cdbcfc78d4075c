import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { GATEWAY_CONFIG } from '../config/config.module';
import type { GatewayConfig, ReplicaConfig, ResolvedReplica } from '../config/gateway-config';
import { PoolSchema } from '../config/service-schema';
import { httpPools } from '../upstream/http-client';
import { GatewayMetrics } from '../telemetry/gateway-metrics.service';
import { Router } from '../routing/router.service';
import { UpstreamFactory } from '../upstream/upstream.factory';
import type { MessageHeaders, UpstreamConnection, UpstreamLease } from '../upstream/upstream-connection';
import { endConnectTrace, startConnectTrace } from '../telemetry/tracing/mcp-spans';
import { Tracing } from '../telemetry/tracing/tracing';
import { AlgedonicBreakerListener } from '../vsm/algedonic-breaker.listener';
import { VsmBus } from '../vsm/vsm-bus.service';
import { DedicatedPort } from './dedicated-port';
import { PooledService } from './pooled-service';
import type { PoolSettings, PoolStats } from './replica-pool';
import { Breakers, DEFAULT_BREAKER_SETTINGS, type BreakerSettings } from './replica-breakers';
import { ReplaySafety } from './replay-safety';
import { upstreamTargetOf, type UpstreamPort } from './upstream-port';
import { WarmStdio } from './warm-stdio';

/**
 * Hands sessions their UpstreamPort and owns what sits behind ports: the upstream
 * connections, the per-replica breakers and the per-service replay knowledge. In `dedicated`
 * mode each port holds one connection at a time, on the replica the ring picks, and moves to
 * the next replica of its failover order when that one fails.
 */
@Injectable()
export class PoolManager implements OnModuleInit, OnApplicationShutdown {
  private readonly log = new Logger(PoolManager.name);
  private readonly live = new Set<UpstreamConnection>();
  /** Connections released but not yet closed (a stdio child still exiting): shutdown waits for them. */
  private readonly closing = new Set<Promise<void>>();
  private readonly safety = new Map<string, ReplaySafety>();
  private readonly pooled = new Map<string, PooledService>();
  readonly breakers: Breakers;
  /** Pre-spawned stdio children of dedicated-mode replicas. */
  readonly warm: WarmStdio;

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly router: Router,
    private readonly factory: UpstreamFactory,
    private readonly metrics: GatewayMetrics,
    vsm: VsmBus,
  ) {
    this.breakers = new Breakers(
      new AlgedonicBreakerListener(vsm, {
        log: this.log,
        field: 'replica',
        name: (target) => `replica ${target}`,
      }),
    );
    this.warm = new WarmStdio(
      config.stdioWarmProcesses,
      (replica) => this.factory.create(replica),
      (m) => this.log.warn(m),
    );
    this.router.settingsChanged = (service) => this.serviceChanged(service);
    httpPools.configure(config.upstreamHttp.keepAliveMs, config.upstreamHttp.connections);
  }

  /** Dedicated stdio replicas get their warm children from the start (STDIO_WARM_PROCESSES). */
  onModuleInit(): void {
    for (const service of this.router.view()) this.warmUp(service.name);
  }

  private warmUp(service: string): void {
    if (this.router.serviceSettings(service)?.mode === 'pooled') return;
    for (const id of this.router.replicaIds(service)) this.warm.fill(this.router.replica(service, id));
  }

  /**
   * Tells the HTTP client how many sockets a replica may need on its origin (before its first
   * exchange: the origin's undici pool is sized then). Pooled: per upstream session one
   * standalone GET, the POSTs it carries at once and one spare (ping, DELETE); dedicated: unbounded.
   */
  private budgetSockets(replica: ReplicaConfig, pool: PoolSettings | undefined): void {
    if (!('url' in replica) || (replica.transport !== 'streamable-http' && replica.transport !== 'sse'))
      return;
    const sockets = pool ? pool.max * (2 + pool.maxConcurrentPerConnection) : undefined;
    httpPools.register(replica.url, replica.id!, sockets);
  }

  /** Opens the session's upstream port: dedicated (its own upstream session) or pooled (shared ones). */
  async open(service: string, key: string, trace?: MessageHeaders): Promise<UpstreamPort> {
    // The live settings (a service added or changed through the admin API or gateway.yaml).
    if (this.router.serviceSettings(service)?.mode === 'pooled') return this.pooledService(service).open(key);
    const port = new DedicatedPort({
      failoverOrder: () => this.failoverOrder(service, key),
      connect: (replica, connectTrace) =>
        this.connect(service, replica as ResolvedReplica, key, connectTrace),
      record: (replicaId, ok) => this.breakers.record(replicaId, ok),
      // Draining, unhealthy or removed replicas, and open breakers, lose their sessions at the next request.
      shouldLeave: (replicaId) =>
        !this.breakers.allows(replicaId) ||
        !this.router.states.isActive(replicaId) ||
        this.router.ownerOf(replicaId) !== service,
      latencyOf: (replicaId) => this.metrics.upstreamLatencyOf(replicaId),
      failedOver: (from, to, reason) => {
        this.metrics.replicaFailover(from, to);
        this.log.warn(`session moved from replica ${from} to ${to}: ${reason}`);
      },
      safety: this.safetyOf(service),
      replayTimeoutMs: this.config.upstream.connectTimeoutMs,
      drainGraceMs: this.router.serviceSettings(service)?.drainGraceMs ?? this.config.upstream.drainGraceMs,
    });
    if (this.router.pick(service, key).length === 0) {
      throw new Error(`no replica of "${service}" takes new sessions (all draining or unhealthy)`);
    }
    try {
      await port.open(trace);
    } catch (err) {
      port.close();
      throw new Error(`no replica of "${service}" could be reached (${(err as Error).message})`);
    }
    return port;
  }

  /**
   * The replicas a session may use, in failover order: active ones whose breaker lets work
   * through. When every active replica's breaker is open they are all returned, in order: a
   * probe of a replica that may have recovered beats refusing the request outright.
   */
  private failoverOrder(service: string, key: string): ResolvedReplica[] {
    const picked = this.router.pick(service, key);
    const allowed = picked.filter((r) => this.breakers.allows(r.id));
    return allowed.length > 0 ? allowed : picked;
  }

  /** Pool sizing of a service from its live settings, defaults filled in. */
  private poolSettings(service: string): PoolSettings {
    const settings = PoolSchema.parse(this.router.serviceSettings(service)?.pool ?? {});
    return {
      min: settings.min,
      max: settings.max,
      maxWaitingClients: settings.maxWaitingClients,
      acquireTimeoutMs: settings.acquireTimeoutMs,
      idleTimeoutMs: settings.idleTimeoutMs,
      evictionRunIntervalMs: settings.evictionRunIntervalMs,
      testOnBorrow: settings.testOnBorrow,
      maxConcurrentPerConnection: settings.maxConcurrentPerConnection,
    };
  }

  /**
   * A service was added or its settings changed live: a pooled service's pools take the new
   * sizing at once (resize), and its replicas' breakers the new thresholds. The mode is read
   * at each open(), so new sessions use the new mode; open sessions keep the port they have.
   */
  private serviceChanged(service: string): void {
    this.pooled.get(service)?.reconfigure(this.poolSettings(service));
    if (this.router.hasService(service)) this.warmUp(service);
    const breaker = this.breakerSettings(service);
    for (const id of this.router.hasService(service) ? this.router.replicaIds(service) : []) {
      this.breakers.reconfigure(id, breaker);
    }
  }

  private pooledService(service: string): PooledService {
    let pooled = this.pooled.get(service);
    if (!pooled) {
      pooled = new PooledService(service, {
        failoverOrder: (key) => this.failoverOrder(service, key),
        createConnection: (replica) => {
          this.breakers.ensure(replica.id!, this.breakerSettings(service));
          this.budgetSockets(replica, this.poolSettings(service));
          return this.factory.create(replica);
        },
        record: (replicaId, ok) => this.breakers.record(replicaId, ok),
        latencyOf: (replicaId) => this.metrics.upstreamLatencyOf(replicaId),
        settings: this.poolSettings(service),
        handshakeTimeoutMs: this.config.upstream.connectTimeoutMs,
      });
      this.pooled.set(service, pooled);
    }
    return pooled;
  }

  /**
   * Pooled-mode isolation counters of every pooled service together: upstream messages no client
   * could be attributed (by method) and client answers to server requests not taken (by reason).
   */
  isolationCounts(): { unattributed: Map<string, number>; refusedAnswers: Map<string, number> } {
    const unattributed = new Map<string, number>();
    const refusedAnswers = new Map<string, number>();
    for (const p of this.pooled.values()) {
      for (const [method, n] of p.unattributedMessages)
        unattributed.set(method, (unattributed.get(method) ?? 0) + n);
      for (const [reason, n] of Object.entries(p.refusedAnswers))
        refusedAnswers.set(reason, (refusedAnswers.get(reason) ?? 0) + n);
    }
    return { unattributed, refusedAnswers };
  }

  /** Pool figures per replica of the pooled services. */
  poolStats(): PoolStats[] {
    return [...this.pooled.values()].flatMap((p) => p.stats());
  }

  /** S3 allocate_connections for an upstream transport kind; returns how many pools changed. */
  resizePools(transport: string, count: number): number {
    let n = 0;
    for (const p of this.pooled.values()) n += p.resize(transport, count);
    return n;
  }

  private safetyOf(service: string): ReplaySafety {
    let safety = this.safety.get(service);
    if (!safety) this.safety.set(service, (safety = new ReplaySafety()));
    return safety;
  }

  private breakerSettings(service: string): BreakerSettings {
    return this.router.serviceSettings(service)?.breaker ?? DEFAULT_BREAKER_SETTINGS;
  }

  /** Breaker settings of the service a replica belongs to. */
  breakerSettingsFor(replicaId: string): BreakerSettings {
    const service = this.router.ownerOf(replicaId);
    return service === undefined ? DEFAULT_BREAKER_SETTINGS : this.breakerSettings(service);
  }

  private async connect(
    service: string,
    replica: ResolvedReplica,
    key: string,
    trace?: MessageHeaders,
  ): Promise<UpstreamLease> {
    this.breakers.ensure(replica.id, this.breakerSettings(service));
    this.budgetSockets(replica, undefined);
    // A stdio child spawned ahead (already running, has read nothing yet), else a new one.
    const connection = this.warm.take(replica) ?? this.factory.create(replica);
    this.live.add(connection);
    // A WebSocket upgrade is the one connect that is an HTTP request of its own: it gets a span
    // and carries it. Other transports carry the trace per message.
    const connectTrace =
      Tracing.enabled && replica.transport === 'ws'
        ? startConnectTrace(trace, upstreamTargetOf(replica))
        : undefined;
    try {
      await connection.start(connectTrace ? connectTrace.headers : trace);
      if (connectTrace) endConnectTrace(connectTrace, undefined);
    } catch (err) {
      if (connectTrace) endConnectTrace(connectTrace, err as Error);
      this.live.delete(connection);
      await connection.close().catch(() => undefined);
      this.log.warn(`upstream ${replica.id} failed to start: ${(err as Error).message}`);
      throw err;
    }
    // Counted on the ring while the session is there: bounded loads and the admin API's per-replica sessions.
    const placement = this.router.place(service, key, replica.id);
    let released = false;
    return {
      connection,
      release: () => {
        if (released) return;
        released = true;
        placement.release();
        this.live.delete(connection);
        const closed = connection
          .close()
          .catch((err: Error) => this.log.warn(`closing ${replica.id}: ${err.message}`))
          .finally(() => this.closing.delete(closed));
        this.closing.add(closed);
      },
    };
  }

  stats(): { open: number; pools: PoolStats[] } {
    return { open: this.live.size, pools: this.poolStats() };
  }

  async onApplicationShutdown(): Promise<void> {
    this.breakers.shutdown();
    await this.warm.stop();
    await Promise.all([...this.pooled.values()].map((p) => p.stop()));
    await Promise.allSettled([...[...this.live].map((c) => c.close()), ...this.closing]);
    this.live.clear();
  }
}
