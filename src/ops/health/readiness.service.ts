import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleDestroy } from '@nestjs/common';
import Redis from 'ioredis';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { PoolManager } from '../../pool/pool-manager.service';
import { Router } from '../../routing/router.service';
import { SessionService } from '../../session/session.module';

/** How long /health/ready waits for Redis to answer PING. */
const REDIS_PING_TIMEOUT_MS = 1000;

export interface ReplicaReadiness {
  /** Replicas that take work now: breaker not open, not draining, not marked unhealthy. */
  up: string[];
  down: string[];
}

/**
 * What liveness and readiness are made of, read from state the gateway already keeps (breakers,
 * replica states, pool figures): a probe never opens an upstream connection of its own.
 */
@Injectable()
export class Readiness implements OnModuleDestroy, OnApplicationShutdown {
  private readonly log = new Logger('Health');
  private readonly loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 });
  private shuttingDown = false;
  private redis: Redis | undefined;

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly sessions: SessionService,
    private readonly pool: PoolManager,
    private readonly router: Router,
  ) {
    this.loop.enable();
    if (config.healthRedisUrlDeprecated)
      this.log.warn(
        'HEALTH_REDIS_URL is deprecated: set REDIS_URL (readiness checks the Redis the cluster uses)',
      );
  }

  /** The first shutdown hook Nest runs: from here on the gateway is not ready (load balancers move away). */
  onModuleDestroy(): void {
    this.shuttingDown = true;
  }

  get draining(): boolean {
    return this.shuttingDown || this.sessions.isDraining;
  }

  /** Event-loop delay (ms) since the previous check: the p99 and the worst. */
  eventLoopLag(): { p99Ms: number; maxMs: number; limitMs: number } {
    const p99Ms = this.loop.count > 0 ? this.loop.percentile(99) / 1e6 : 0;
    const maxMs = this.loop.count > 0 ? this.loop.max / 1e6 : 0;
    this.loop.reset();
    return { p99Ms: round(p99Ms), maxMs: round(maxMs), limitMs: this.config.healthMaxEventLoopLagMs };
  }

  /** Per service, its replicas that take work and those that do not. */
  replicas(): Record<string, ReplicaReadiness> {
    const out: Record<string, ReplicaReadiness> = {};
    for (const service of this.router.serviceNames()) {
      const entry: ReplicaReadiness = { up: [], down: [] };
      for (const id of this.router.replicaIds(service)) {
        const usable = this.pool.breakers.allows(id) && this.router.states.isActive(id);
        (usable ? entry.up : entry.down).push(id);
      }
      out[service] = entry;
    }
    return out;
  }

  /** Pooled replicas whose pool is at its maximum with requests waiting. */
  exhaustedPools(): { replica: string; inUse: number; max: number; pending: number }[] {
    return this.pool
      .poolStats()
      .filter((p) => p.max > 0 && p.borrowed >= p.max && p.pending > 0)
      .map((p) => ({ replica: p.replica, inUse: p.borrowed, max: p.max, pending: p.pending }));
  }

  /** PING to the configured Redis; undefined when none is configured. */
  async redisReachable(): Promise<{ ok: boolean; error?: string } | undefined> {
    const url = this.config.healthRedisUrl;
    if (url === undefined) return undefined;
    this.redis ??= this.connectRedis(url);
    let timer: NodeJS.Timeout | undefined;
    try {
      const answer = await Promise.race([
        this.redis.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${REDIS_PING_TIMEOUT_MS} ms`)),
            REDIS_PING_TIMEOUT_MS,
          );
        }),
      ]);
      return { ok: answer === 'PONG' };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
  }

  private connectRedis(url: string): Redis {
    // Commands fail at once while disconnected (no offline queue): a probe must not hang.
    const redis = new Redis(url, {
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    redis.on('error', (err: Error) => this.log.debug(`redis: ${err.message}`));
    return redis;
  }

  onApplicationShutdown(): void {
    this.loop.disable();
    this.redis?.disconnect();
    this.redis = undefined;
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
