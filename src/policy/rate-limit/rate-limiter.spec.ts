import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RateLimiter, type LimitSource } from './rate-limiter';

const slow: LimitSource = { limitFor: () => ({ limit: { perSecond: 0.2, burst: 3 }, policy: 'default' }) };

describe('RateLimiter bucket bound', () => {
  test('50,000 claimed client ids keep the bucket count at the cap; a real client stays limited', () => {
    const limiter = new RateLimiter(slow, undefined, 10_000);
    try {
      let now = 1_000;
      // The real client spends its burst and is refused.
      for (let i = 0; i < 3; i++) assert.equal(limiter.take('alice', 'alice', undefined, now), undefined);
      assert.ok(limiter.take('alice', 'alice', undefined, now), 'over its burst');
      let aliceGranted = 0;
      for (let i = 0; i < 50_000; i++) {
        // Each junk id takes one token (2 left: not idle, so the sweep cannot drop it).
        assert.equal(limiter.take(`spoofed-${i}`, `spoofed-${i}`, undefined, now), undefined);
        assert.ok(limiter.size <= 10_000, `${limiter.size} buckets after ${i + 1} ids`);
        if (i % 500 === 0) {
          now += 1; // 50,000 ids in 100 ms: alice earns 0.02 tokens meanwhile, never a whole one
          if (limiter.take('alice', 'alice', undefined, now) === undefined) aliceGranted++;
        }
      }
      // At the bound the least recently used tenth goes at once (as the flood buckets do).
      assert.ok(limiter.size > 9_000, `${limiter.size} buckets: near the cap, not emptied`);
      // Evicting junk never handed the limited client a fresh bucket.
      assert.equal(aliceGranted, 0);
      const verdict = limiter.take('alice', 'alice', undefined, now);
      assert.ok(verdict && verdict.retryAfterMs > 4_000, JSON.stringify(verdict));
    } finally {
      limiter.close();
    }
  });
});
