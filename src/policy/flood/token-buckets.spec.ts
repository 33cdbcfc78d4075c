import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TokenBuckets } from './token-buckets';

describe('TokenBuckets', () => {
  test('a burst passes, the next take waits for one token, and it refills at the rate', () => {
    const b = new TokenBuckets(10, 3);
    assert.equal(b.take('a', 0), 0);
    assert.equal(b.take('a', 0), 0);
    assert.equal(b.take('a', 0), 0);
    assert.equal(b.take('a', 0), 100); // 10/s: one token per 100 ms
    assert.equal(b.take('b', 0), 0, 'another key has its own bucket');
    assert.equal(b.take('a', 100), 0);
    assert.ok(b.take('a', 150) > 0);
  });

  test('rate 0 turns the limit off', () => {
    const b = new TokenBuckets(0, 1);
    for (let i = 0; i < 100; i++) assert.equal(b.take('a', 0), 0);
    assert.equal(b.size, 0);
  });

  test('sweep drops buckets that refilled; the key bound evicts the oldest', () => {
    const b = new TokenBuckets(10, 2, 10);
    for (let i = 0; i < 10; i++) b.take(`k${i}`, 0);
    assert.equal(b.size, 10);
    b.take('new', 0); // at the bound: nothing refilled yet, so the oldest tenth goes
    assert.equal(b.size, 10);
    b.sweep(200); // 2 tokens at 10/s: full after 200 ms
    assert.equal(b.size, 0);
  });

  test('configure changes the rate live', () => {
    const b = new TokenBuckets(1, 1);
    assert.equal(b.take('a', 0), 0);
    assert.equal(b.take('a', 0), 1000);
    b.configure(1000, 1);
    assert.equal(b.take('a', 1), 0);
  });
});
