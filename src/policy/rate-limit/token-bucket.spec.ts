import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TokenBucket } from './token-bucket';

const bucket = (perSecond: number, burst: number, now = 0) =>
  new TokenBucket({ perSecond, burst }, now, 'c', undefined, 'default');

describe('TokenBucket', () => {
  test('grants its burst at once, then says how long until the next token', () => {
    const b = bucket(10, 3);
    assert.equal(b.take(0), 0);
    assert.equal(b.take(0), 0);
    assert.equal(b.take(0), 0);
    assert.equal(b.take(0), 100); // one token every 100 ms
    assert.equal(b.take(40), 60);
  });

  test('refills with elapsed time, never past the burst', () => {
    const b = bucket(10, 2);
    b.take(0);
    b.take(0);
    assert.equal(b.take(100), 0);
    assert.equal(b.remaining(10_000), 2);
  });

  test('a limit of 0 refuses everything with a one-second wait', () => {
    const b = bucket(0, 0);
    assert.equal(b.take(0), 1000);
    assert.equal(b.take(60_000), 1000);
  });

  test('a raised limit grants its extra room at once; a lowered one caps what is held', () => {
    const b = bucket(0, 0);
    b.setLimit({ perSecond: 100, burst: 100 }, 0);
    assert.equal(b.take(0), 0);
    b.setLimit({ perSecond: 1, burst: 1 }, 0);
    assert.equal(b.take(0), 0);
    assert.equal(b.take(0), 1000);
  });

  test('a full bucket is idle (may be dropped); a blocked or used one is not', () => {
    const b = bucket(10, 2);
    assert.equal(b.idle(0), true);
    b.take(0);
    assert.equal(b.idle(0), false);
    assert.equal(b.idle(1000), true);
    b.blockedUntil = 5000;
    assert.equal(b.idle(1000), false);
    assert.equal(b.take(1000), 4000);
  });
});
