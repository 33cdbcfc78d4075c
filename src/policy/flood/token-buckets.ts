/**
 * One token bucket per key (a client address), refilled continuously at `ratePerSec` up to
 * `burst`. Cheap per call (one Map lookup, arithmetic, no timer) and memory-bounded: a key whose
 * bucket has refilled completely carries no information and is dropped by {@link sweep}, and past
 * `maxKeys` the oldest keys go first, so an attacker cycling through addresses cannot grow it.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private ratePerSec: number,
    private burst: number,
    private readonly maxKeys = 100_000,
  ) {}

  /** Changes the rate and burst; buckets keep their tokens (capped at the new burst). */
  configure(ratePerSec: number, burst: number): void {
    this.ratePerSec = ratePerSec;
    this.burst = burst;
  }

  /** True when the limit is off (rate 0). */
  get disabled(): boolean {
    return this.ratePerSec <= 0;
  }

  /**
   * Takes one token for `key`: 0 when there was one, otherwise the milliseconds until the next
   * token (what a refusal's Retry-After says).
   */
  take(key: string, now: number): number {
    if (this.ratePerSec <= 0) return 0;
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxKeys) this.evict(now);
      bucket = new Bucket(this.burst, now);
      this.buckets.set(key, bucket);
    } else {
      bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) * this.ratePerSec) / 1000);
      bucket.at = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - bucket.tokens) * 1000) / this.ratePerSec));
  }

  /** Drops the buckets that have refilled completely (they would start full anyway). */
  sweep(now: number): void {
    if (this.ratePerSec <= 0) {
      this.buckets.clear();
      return;
    }
    const fullAfterMs = (this.burst * 1000) / this.ratePerSec;
    for (const [key, bucket] of this.buckets) {
      if (now - bucket.at >= fullAfterMs) this.buckets.delete(key);
    }
  }

  get size(): number {
    return this.buckets.size;
  }

  /** At the key bound: sweep, and if that freed nothing, drop the oldest tenth (Map order = insertion). */
  private evict(now: number): void {
    this.sweep(now);
    if (this.buckets.size < this.maxKeys) return;
    let n = Math.max(1, Math.floor(this.maxKeys / 10));
    for (const key of this.buckets.keys()) {
      this.buckets.delete(key);
      if (--n === 0) break;
    }
  }
}

class Bucket {
  constructor(
    public tokens: number,
    public at: number,
  ) {}
}
