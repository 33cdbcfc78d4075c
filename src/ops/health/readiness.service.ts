import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationShutdown,
  type OnModuleDestroy,
  type OnModuleInit,
} from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import Redis from 'ioredis';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { discoverMarked } from '../../telemetry/discover-marked';
import {
  HEALTH_SOURCE,
  type HealthIndicator,
  type HealthProbe,
  type HealthSource,
} from '../../telemetry/health-source';

/** How long /health/ready waits for Redis to answer PING. */
const REDIS_PING_TIMEOUT_MS = 1000;

/**
 * What liveness and readiness are made of, read from state the gateway already keeps (breakers,
 * replica states, pool figures): a probe never opens an upstream connection of its own. The
 * process-wide checks (event loop, shutdown, Redis) are here; each feature reports on itself
 * through a provider marked HEALTH_SOURCE (the pool its replicas and pools, the session layer
 * its count and its drain), found at start-up.
 */
@Injectable()
export class Readiness implements OnModuleInit, OnModuleDestroy, OnApplicationShutdown {
  private readonly log = new Logger('Health');
  private readonly loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 });
  private shuttingDown = false;
  private redis: Redis | undefined;
  private readonly sources: HealthSource[] = [];

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly discovery?: DiscoveryService,
  ) {
    this.loop.enable();
    if (config.healthRedisUrlDeprecated)
      this.log.warn(
        'HEALTH_REDIS_URL is deprecated: set REDIS_URL (readiness checks the Redis the cluster uses)',
      );
  }

  onModuleInit(): void {
    if (this.discovery)
      this.sources.push(...discoverMarked<HealthSource, void>(this.discovery, HEALTH_SOURCE));
  }

  /** The features' own checks on `probe`, in the order their providers were found. */
  indicators(probe: HealthProbe): HealthIndicator[] {
    return this.sources.flatMap((s) => s.healthIndicators?.() ?? []).filter((i) => i.probe === probe);
  }

  /** The first shutdown hook Nest runs: from here on the gateway is not ready (load balancers move away). */
  onModuleDestroy(): void {
    this.shuttingDown = true;
  }

  get draining(): boolean {
    return this.shuttingDown || this.sources.some((s) => s.shuttingDown?.() === true);
  }

  /** Event-loop delay (ms) since the previous check: the p99 and the worst. */
  eventLoopLag(): { p99Ms: number; maxMs: number; limitMs: number } {
    const p99Ms = this.loop.count > 0 ? this.loop.percentile(99) / 1e6 : 0;
    const maxMs = this.loop.count > 0 ? this.loop.max / 1e6 : 0;
    this.loop.reset();
    return { p99Ms: round(p99Ms), maxMs: round(maxMs), limitMs: this.config.healthMaxEventLoopLagMs };
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
