/** A rate: `perSecond` tokens refill each second, up to `burst` held at once. */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

/**
 * One client's (or one client-and-tool's) token bucket. Plain numbers, decided synchronously:
 * the per-message check must not cost a Promise. Refill is computed from the elapsed time at
 * each take, so an idle bucket costs nothing and needs no timer.
 */
export class TokenBucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  updatedAt: number;
  /**
   * Shared (Redis) mode: nothing is granted before this time (ms) because the cluster as a
   * whole is over the limit; 0 otherwise.
   */
  blockedUntil = 0;
  /** Shared mode: takes not yet reported to the shared limiter. */
  unreported = 0;

  constructor(
    public limit: RateLimit,
    now: number,
    /** Whose bucket it is, so a policy change finds it (`anonymous` for an address's bucket). */
    readonly clientId: string,
    /** The tool of a per-tool bucket. */
    readonly tool: string | undefined,
    /** Which limit it follows, for the RateLimit-Policy header. */
    public policy: 'default' | 'client' | 'tool',
  ) {
    this.tokens = limit.burst;
    this.updatedAt = now;
  }

  /** Takes one token: 0 when granted, otherwise how long (ms) until one will be there. */
  take(now: number): number {
    this.refill(now);
    if (this.blockedUntil > now) return this.blockedUntil - now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    // A limit of 0 per second refuses everything; the client is told to come back in a second.
    if (this.limit.perSecond <= 0) return 1000;
    return Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.limit.perSecond));
  }

  /** Tokens it would hold now (for the RateLimit header's remaining quota). */
  remaining(now: number): number {
    this.refill(now);
    return Math.floor(this.tokens);
  }

  /** A new limit (S3 adjust_rate_limit, S5 policy_update): applies from the next take. */
  setLimit(limit: RateLimit, now: number): void {
    this.refill(now);
    // A larger bucket grants its extra room at once (a client raised from 0 is served on its next
    // request); a smaller one keeps no more than it holds.
    const grown = limit.burst - this.limit.burst;
    this.limit = limit;
    this.tokens = Math.min(limit.burst, this.tokens + (grown > 0 ? grown : 0));
  }

  /** Full and not blocked: indistinguishable from a fresh bucket, so it may be dropped. */
  idle(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.limit.burst && this.blockedUntil <= now && this.unreported === 0;
  }

  private refill(now: number): void {
    const elapsed = now - this.updatedAt;
    if (elapsed <= 0) return;
    this.updatedAt = now;
    const tokens = this.tokens + (elapsed * this.limit.perSecond) / 1000;
    this.tokens = tokens > this.limit.burst ? this.limit.burst : tokens;
  }
}
