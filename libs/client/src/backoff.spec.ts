import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backoffDelay } from './backoff';

describe('backoffDelay', () => {
  const policy = { minDelayMs: 100, maxDelayMs: 2000 };

  test('grows exponentially from the minimum and stops at the maximum (no jitter drawn)', () => {
    const top = () => 0; // random() = 0: the full, un-jittered delay
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n, policy, top)),
      [100, 200, 400, 800, 1600, 2000, 2000],
    );
  });

  test('jitter takes at most half the delay by default (equal jitter keeps a floor)', () => {
    assert.equal(
      backoffDelay(3, policy, () => 1),
      200,
    );
    assert.equal(
      backoffDelay(3, policy, () => 0.5),
      300,
    );
    for (let i = 0; i < 1000; i++) {
      const d = backoffDelay(4, policy);
      assert.ok(d >= 400 && d <= 800, `delay ${d} outside [400, 800]`);
    }
  });

  test('spreads a crowd: delays for the same attempt differ', () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(5, policy)));
    assert.ok(delays.size > 10, `only ${delays.size} distinct delays`);
  });

  test('honours factor and jitter options, and clamps nonsense', () => {
    assert.equal(
      backoffDelay(3, { minDelayMs: 10, maxDelayMs: 1e6, factor: 3, jitter: 0 }, () => 0.9),
      90,
    );
    assert.equal(
      backoffDelay(2, { minDelayMs: 10, maxDelayMs: 1e6, jitter: 1 }, () => 1),
      0,
    );
    assert.equal(
      backoffDelay(0, policy, () => 0),
      100,
      'attempt < 1 counts as the first',
    );
    assert.equal(
      backoffDelay(10_000, policy, () => 0),
      2000,
      'huge attempts stay capped and finite',
    );
    assert.equal(
      backoffDelay(1, { minDelayMs: 500, maxDelayMs: 100 }, () => 0),
      500,
      'max below min → min',
    );
  });
});
