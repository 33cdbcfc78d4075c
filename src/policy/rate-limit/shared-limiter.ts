import Redis from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { TokenBucket, RateLimit } from './token-bucket';

/** What a node does while Redis cannot be reached. */
export type RedisFailMode = 'open' | 'closed';

export interface SharedLimiterOptions {
  url: string;
  /** `open`: each node goes on alone with an in-memory insurance limiter; `closed`: every request is refused. */
  failMode: RedisFailMode;
  /** How often the takes of every busy bucket are reported to Redis (one batch, auto-pipelined). */
  syncIntervalMs: number;
  /** Key prefix in Redis, so several gateways' deployments can share one Redis. */
  keyPrefix: string;
  onError?: (err: Error) => void;
}

/** What a refused request is told to wait while fail-closed and Redis is away. */
const CLOSED_RETRY_MS = 1000;

/**
 * The cluster-wide limit (rate-limiter-flexible's RateLimiterRedis). It is not asked per request:
 * each node decides with its local bucket at once, counts what it granted, and every
 * `syncIntervalMs` reports those counts (`consume(key, n)`, one promise per busy key per
 * interval, never per message). Redis answers with what the whole cluster has left in the window:
 * the node caps its bucket there, or empties and blocks it until the window ends. Two nodes can
 * overshoot a shared limit by at most what they grant within one interval.
 *
 * Redis keeps a fixed window: `burst` points per `burst / perSecond` seconds (at least 1 s), the
 * same average rate and burst as the local token bucket.
 */
export class SharedLimiter {
  readonly redis: Redis;
  private readonly limiters = new Map<string, RateLimiterRedis>();
  private readonly dirty = new Map<string, TokenBucket>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: SharedLimiterOptions) {
    this.redis = new Redis(options.url, {
      // Fail fast while Redis is away (the insurance limiter or fail-closed takes over) instead of queueing.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      enableAutoPipelining: true,
      lazyConnect: false,
      retryStrategy: (times) => Math.min(times * 100, 2000),
    });
    this.redis.on('error', (err: Error) => options.onError?.(err));
    this.timer = setInterval(() => this.flush(), options.syncIntervalMs);
    this.timer.unref();
  }

  /** A local take was granted for `key`: it is reported with the next batch. */
  taken(key: string, bucket: TokenBucket): void {
    bucket.unreported++;
    if (bucket.unreported === 1) this.dirty.set(key, bucket);
  }

  /**
   * Fail-closed while Redis is unreachable: the wait to tell every request (ms); 0 otherwise.
   * Read on every request: one string comparison.
   */
  refusing(): number {
    return this.options.failMode === 'closed' && this.redis.status !== 'ready' ? CLOSED_RETRY_MS : 0;
  }

  /** Reports the takes of every busy bucket and applies what Redis says is left cluster-wide. */
  flush(): void {
    if (this.dirty.size === 0 || this.closed) return;
    const batch = [...this.dirty];
    this.dirty.clear();
    for (const [key, bucket] of batch) {
      const points = bucket.unreported;
      bucket.unreported = 0;
      this.limiterFor(bucket.limit)
        .consume(key, points)
        .then(
          (res: RateLimiterRes) => {
            // What the node granted since this report is not in Redis yet: keep room for none of it.
            const left = res.remainingPoints - bucket.unreported;
            if (bucket.tokens > left) bucket.tokens = Math.max(0, left);
          },
          (res: unknown) => {
            if (res instanceof RateLimiterRes) {
              // The cluster used the window up: nothing more until Redis's window ends.
              bucket.tokens = 0;
              bucket.blockedUntil = Date.now() + res.msBeforeNext;
            }
            // Any other failure: Redis unreachable and fail-closed (refusing() answers), or a transient error.
          },
        );
    }
  }

  private limiterFor(limit: RateLimit): RateLimiterRedis {
    const points = Math.max(1, limit.burst);
    const duration = Math.max(1, Math.round(limit.burst / Math.max(limit.perSecond, 1e-9)));
    const id = `${points}/${duration}`;
    let limiter = this.limiters.get(id);
    if (limiter === undefined) {
      limiter = new RateLimiterRedis({
        storeClient: this.redis,
        points,
        duration,
        keyPrefix: `${this.options.keyPrefix}:${id}`,
        rejectIfRedisNotReady: true,
        insuranceLimiter:
          this.options.failMode === 'open'
            ? new RateLimiterMemory({ points, duration, keyPrefix: `${this.options.keyPrefix}:${id}` })
            : undefined,
      });
      this.limiters.set(id, limiter);
    }
    return limiter;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.redis.disconnect();
  }
}
