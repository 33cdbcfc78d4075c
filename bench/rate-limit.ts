/**
 * What one rate-limit decision costs in this process: the gateway's synchronous token bucket
 * (src/policy/rate-limit/token-bucket.ts) next to rate-limiter-flexible's RateLimiterMemory,
 * whose consume() returns a promise per call. Bounded: a fixed number of calls, about a second.
 * Run alone with `node dist/bench/rate-limit.js`; `npm run bench -- --suites=rate-limit` runs it
 * with the gateway comparison (limits on vs off).
 */
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { TokenBucket } from '../src/policy/rate-limit/token-bucket';

export interface LimiterMicroReport {
  calls: number;
  keys: number;
  /** ns per decision, synchronous token bucket (Map lookup + arithmetic). */
  tokenBucketNs: number;
  /** ns per decision, `await limiter.consume(key)` one after another. */
  flexibleAwaitedNs: number;
  /** ns per decision, consume() calls issued together and awaited with Promise.all (its best case). */
  flexibleBatchedNs: number;
}

export async function runLimiterMicro(calls = 200_000, keys = 50): Promise<LimiterMicroReport> {
  const names = Array.from({ length: keys }, (_, i) => `bench-client-${i}`);
  const limit = { perSecond: 1e9, burst: 1e9 };
  // Each measured twice, the first pass a warm-up (JIT), so neither side pays for compiling.
  let tokenBucketNs = 0;
  let flexibleAwaitedNs = 0;
  let flexibleBatchedNs = 0;
  for (let pass = 0; pass < 2; pass++) {
    const buckets = new Map<string, TokenBucket>();
    let t = process.hrtime.bigint();
    let refused = 0;
    for (let i = 0; i < calls; i++) {
      const key = names[i % keys];
      let bucket = buckets.get(key);
      if (bucket === undefined) {
        bucket = new TokenBucket(limit, Date.now(), key, undefined, 'default');
        buckets.set(key, bucket);
      }
      if (bucket.take(Date.now()) !== 0) refused++;
    }
    tokenBucketNs = Number(process.hrtime.bigint() - t) / calls;
    if (refused > 0) throw new Error(`token bucket refused ${refused} calls under an unreachable limit`);

    const flexible = new RateLimiterMemory({ points: 1e9, duration: 1, keyPrefix: `awaited${pass}` });
    t = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) await flexible.consume(names[i % keys]);
    flexibleAwaitedNs = Number(process.hrtime.bigint() - t) / calls;

    const batched = new RateLimiterMemory({ points: 1e9, duration: 1, keyPrefix: `batched${pass}` });
    t = process.hrtime.bigint();
    for (let i = 0; i < calls; i += 1000) {
      const round: Promise<unknown>[] = [];
      for (let j = i; j < i + 1000 && j < calls; j++) round.push(batched.consume(names[j % keys]));
      await Promise.all(round);
    }
    flexibleBatchedNs = Number(process.hrtime.bigint() - t) / calls;
  }
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    calls,
    keys,
    tokenBucketNs: r(tokenBucketNs),
    flexibleAwaitedNs: r(flexibleAwaitedNs),
    flexibleBatchedNs: r(flexibleBatchedNs),
  };
}

if (require.main === module) {
  void runLimiterMicro().then((report) => console.log(JSON.stringify(report, null, 2)));
}
