import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SeqSet, SequencedInbox } from './sequence-tracker';

describe('SeqSet', () => {
  test('keeps a contiguous watermark and remembers numbers above a gap', () => {
    const s = new SeqSet();
    assert.equal(s.add(1), true);
    assert.equal(s.add(2), true);
    assert.equal(s.add(5), true);
    assert.equal(s.watermark, 2);
    assert.equal(s.highest, 5);
    assert.equal(s.has(5), true);
    assert.equal(s.has(4), false);
    assert.equal(s.add(3), true);
    assert.equal(s.add(4), true);
    assert.equal(s.watermark, 5, 'filling the gap folds the numbers above it into the watermark');
    assert.equal(s.pendingAbove, 0);
  });

  test('reports repeats', () => {
    const s = new SeqSet();
    s.add(1);
    s.add(3);
    assert.equal(s.add(1), false);
    assert.equal(s.add(3), false);
  });

  test('advanceTo moves the watermark and forgets what it covers', () => {
    const s = new SeqSet();
    s.add(7);
    s.add(12);
    s.advanceTo(10);
    assert.equal(s.watermark, 10);
    assert.equal(s.pendingAbove, 1);
    s.add(11);
    assert.equal(s.watermark, 12);
  });

  test('a permanent hole is given up once too much piles above it (memory stays bounded)', () => {
    const s = new SeqSet(100);
    for (let seq = 2; seq <= 102; seq++) s.add(seq);
    assert.equal(s.watermark, 102, 'the hole at 1 was given up');
    assert.equal(s.pendingAbove, 0);
  });
});

describe('SequencedInbox', () => {
  function inbox(holdMs = 1000) {
    const out: Array<[string, number | undefined]> = [];
    const box = new SequencedInbox<string>((item, seq) => out.push([item, seq]), { holdMs });
    return { box, out };
  }

  test('never delivers a number twice (a replay after resume)', () => {
    const { box, out } = inbox();
    for (const seq of [1, 2, 3]) assert.equal(box.push(seq, `m${seq}`), 'delivered');
    // The gateway replays 2..4 after a resume from 1 (the client had more than it said).
    assert.equal(box.push(2, 'm2'), 'duplicate');
    assert.equal(box.push(3, 'm3'), 'duplicate');
    assert.equal(box.push(4, 'm4'), 'delivered');
    assert.deepEqual(
      out.map(([m]) => m),
      ['m1', 'm2', 'm3', 'm4'],
    );
    assert.equal(box.watermark, 4);
  });

  test('holds a message that arrives ahead of a gap and delivers in order once it fills', () => {
    const { box, out } = inbox();
    box.push(1, 'a');
    assert.equal(box.push(3, 'c'), 'held');
    assert.equal(box.push(4, 'd'), 'held');
    assert.equal(box.push(3, 'c'), 'duplicate', 'a held number is a repeat too');
    assert.deepEqual(
      out.map(([m]) => m),
      ['a'],
    );
    assert.equal(box.push(2, 'b'), 'delivered');
    assert.deepEqual(out, [
      ['a', 1],
      ['b', 2],
      ['c', 3],
      ['d', 4],
    ]);
    assert.equal(box.heldCount, 0);
    box.dispose();
  });

  test('delivers held messages after the window when the gap never fills; a late filler still comes once', async () => {
    const { box, out } = inbox(30);
    box.push(1, 'a');
    box.push(3, 'c');
    box.push(4, 'd');
    await sleep(80);
    assert.deepEqual(
      out.map(([m]) => m),
      ['a', 'c', 'd'],
    );
    assert.equal(box.watermark, 1, 'the resume position stays below the hole, so a resume can fill it');
    assert.equal(box.push(5, 'e'), 'delivered', 'in order after the skipped gap: no new wait');
    assert.equal(box.push(2, 'b'), 'delivered', 'the hole filled late: delivered, once');
    assert.equal(box.push(2, 'b'), 'duplicate');
    assert.equal(box.watermark, 5);
    box.dispose();
  });

  test('messages without a number are delivered at once and do not move the position', () => {
    const { box, out } = inbox();
    box.push(undefined, 'x');
    box.push(undefined, 'x');
    assert.deepEqual(out, [
      ['x', undefined],
      ['x', undefined],
    ]);
    assert.equal(box.watermark, 0);
  });

  test('markDelivered records a number whose message came without one, releasing what waited on it', () => {
    const { box, out } = inbox();
    box.push(2, 'b');
    box.markDelivered(1);
    assert.deepEqual(out, [['b', 2]]);
    assert.equal(box.watermark, 2);
  });

  test('a WebSocket-style stream with a re-sent old answer: the repeat is dropped, the rest flows', () => {
    const { box, out } = inbox();
    for (let seq = 1; seq <= 100; seq++) box.push(seq, `n${seq}`);
    // position 49 → the old answer 50 again → position 100 → 101
    assert.equal(box.push(50, 'n50'), 'duplicate');
    assert.equal(box.push(101, 'n101'), 'delivered');
    assert.equal(out.length, 101);
  });
});
