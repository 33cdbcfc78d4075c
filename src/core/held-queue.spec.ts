import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeldQueue } from './held-queue';

describe('HeldQueue', () => {
  test('fits() says no at the count bound and past the byte bound', () => {
    const q = new HeldQueue<string>(2, 10);
    assert.ok(q.fits(10));
    assert.ok(!q.fits(11));
    q.push('a', 6);
    assert.ok(q.fits(4));
    assert.ok(!q.fits(5));
    q.push('b', 1);
    assert.ok(!q.fits(0), 'two items: the count bound is reached');
    assert.equal(q.length, 2);
    assert.equal(q.bytes, 7);
  });

  test('without a byte bound only the count is bounded', () => {
    const q = new HeldQueue<number>(3);
    q.push(1);
    q.push(2, 1_000_000);
    assert.ok(q.fits(Number.MAX_SAFE_INTEGER));
    q.push(3);
    assert.ok(!q.fits());
  });

  test('shift() takes the oldest first and gives its bytes back', () => {
    const q = new HeldQueue<string>(10, 100);
    q.push('a', 5);
    q.push('b', 7);
    assert.equal(q.shift(), 'a');
    assert.equal(q.bytes, 7);
    assert.equal(q.length, 1);
    q.push('c', 1);
    assert.equal(q.shift(), 'b');
    assert.equal(q.shift(), 'c');
    assert.equal(q.shift(), undefined);
    assert.equal(q.length, 0);
    assert.equal(q.bytes, 0);
  });

  test('drain() empties the queue before the caller goes through the items', () => {
    const q = new HeldQueue<string>(10, 100);
    q.push('a', 1);
    q.push('b', 2);
    q.push('c', 3);
    q.shift();
    const seen: string[] = [];
    for (const item of q.drain()) {
      seen.push(item);
      if (item === 'b') q.push('again', 4); // held anew while draining: kept for later
    }
    assert.deepEqual(seen, ['b', 'c']);
    assert.equal(q.length, 1);
    assert.equal(q.bytes, 4);
    assert.deepEqual(q.drain(), ['again']);
  });

  test('clear() forgets everything', () => {
    const q = new HeldQueue<string>(10, 100);
    q.push('a', 50);
    q.clear();
    assert.equal(q.length, 0);
    assert.equal(q.bytes, 0);
    assert.ok(q.fits(100));
  });

  test('a queue that never empties keeps its order and counts through compaction', () => {
    const q = new HeldQueue<number>(10_000, Number.POSITIVE_INFINITY);
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 100; i++) q.push(next++, 2);
      for (let i = 0; i < 90; i++) assert.equal(q.shift(), expected++);
    }
    assert.equal(q.length, next - expected);
    assert.equal(q.bytes, 2 * (next - expected));
    assert.deepEqual(
      q.drain(),
      Array.from({ length: next - expected }, (_, i) => expected + i),
    );
  });
});
