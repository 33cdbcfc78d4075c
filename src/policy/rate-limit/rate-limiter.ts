import type { SharedLimiter } from './shared-limiter';
import { TokenBucket, type RateLimit } from './token-bucket';

/** How often buckets that refilled completely are dropped (a full bucket equals an absent one). */
const SWEEP_INTERVAL_MS = 10_000;

/** What a refused take reports: the wait, and the limit that refused (for the RateLimit headers). */
export interface RateVerdict {
  retryAfterMs: number;
  limit: RateLimit;
  /** Which limit refused: the default, the client's own, or one of its tools'. */
  policy: 'default' | 'client' | 'tool';
  /** Refused because the shared store is unreachable and the gateway fails closed. */
  unavailable?: boolean;
}

/** Where a key's limit comes from; asked when a bucket is created and when policy changes. */
export interface LimitSource {
  limitFor(clientId: string, tool: string | undefined): { limit: RateLimit; policy: RateVerdict['policy'] };
}

/**
 * Token buckets by key (a client id, `#<address>` for an anonymous client, `<key> tool:<name>`
 * for a tool's own limit). Synchronous: a take is a Map lookup and some arithmetic. With a
 * {@link SharedLimiter} (Redis), the local decision stands and the shared store is told
 * afterwards in batches; its answer caps or blocks the local bucket (see README "Rate limits").
 */
export class RateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly source: LimitSource,
    readonly shared: SharedLimiter | undefined,
    /**
     * At most this many buckets: with authentication off every claimed client id is a key, so the
     * 10 s sweep alone would let a client cycling through ids grow the map without bound.
     */
    private readonly maxBuckets = 100_000,
  ) {
    this.sweep = setInterval(() => this.dropIdle(Date.now()), SWEEP_INTERVAL_MS);
    this.sweep.unref();
  }

  /** Takes one token for `key`: undefined when granted, otherwise the refusal. */
  take(key: string, clientId: string, tool: string | undefined, now: number): RateVerdict | undefined {
    const buckets = this.buckets;
    let bucket = buckets.get(key);
    if (bucket === undefined) {
      if (buckets.size >= this.maxBuckets) this.evict(now);
      const { limit, policy } = this.source.limitFor(clientId, tool);
      bucket = new TokenBucket(limit, now, clientId, tool, policy);
      buckets.set(key, bucket);
    } else if (buckets.size > this.maxBuckets >>> 1) {
      // Under pressure the Map's order is kept as last use (re-inserted at the end), so eviction
      // drops the junk ids nobody uses again, not a busy client whose empty bucket would refill.
      buckets.delete(key);
      buckets.set(key, bucket);
    }
    if (this.shared !== undefined) {
      // Fail-closed with Redis away: refused before a token is spent or reported.
      const closed = this.shared.refusing();
      if (closed)
        return { retryAfterMs: closed, limit: bucket.limit, policy: bucket.policy, unavailable: true };
    }
    const wait = bucket.take(now);
    if (wait === 0 && this.shared !== undefined) this.shared.taken(key, bucket);
    return wait === 0 ? undefined : { retryAfterMs: wait, limit: bucket.limit, policy: bucket.policy };
  }

  /** Tokens left for `key` (a fresh key has its whole burst). */
  remaining(key: string, now: number): number | undefined {
    return this.buckets.get(key)?.remaining(now);
  }

  /** Policy changed (S3, S5, a new configuration): every bucket takes its new limit from the next request. */
  limitsChanged(clientId?: string): void {
    const now = Date.now();
    for (const bucket of this.buckets.values()) {
      if (clientId !== undefined && bucket.clientId !== clientId) continue;
      const { limit, policy } = this.source.limitFor(bucket.clientId, bucket.tool);
      bucket.setLimit(limit, now);
      bucket.policy = policy;
    }
  }

  get size(): number {
    return this.buckets.size;
  }

  close(): void {
    clearInterval(this.sweep);
    this.shared?.close();
  }

  /** At the bound: drop the idle buckets, and if that freed nothing, the least recently used tenth. */
  private evict(now: number): void {
    this.dropIdle(now);
    if (this.buckets.size < this.maxBuckets) return;
    let n = Math.max(1, Math.floor(this.maxBuckets / 10));
    for (const key of this.buckets.keys()) {
      this.buckets.delete(key);
      if (--n === 0) break;
    }
  }

  private dropIdle(now: number): void {
    for (const [key, bucket] of this.buckets) if (bucket.idle(now)) this.buckets.delete(key);
  }
}
