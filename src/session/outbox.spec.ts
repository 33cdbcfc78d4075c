import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Outbox, ResumeUnavailableError } from './outbox';

describe('Outbox', () => {
  test('numbers messages and replays what came after a position, per stream', () => {
    const o = new Outbox({ maxMessages: 10, maxBytes: 1e6 });
    o.append(1, 'a');
    o.append(0, 'b');
    o.append(1, 'c');
    assert.deepEqual(
      o.since(0).map((e) => e.raw),
      ['a', 'b', 'c'],
    );
    assert.deepEqual(
      o.since(1, 1).map((e) => [e.seq, e.raw]),
      [[3, 'c']],
    );
  });

  test('holds nothing until the first message (idle sessions stay small)', () => {
    const o = new Outbox({ maxMessages: 10, maxBytes: 1e6 });
    assert.equal(o.size, 0);
    assert.equal((o as unknown as { entries: unknown }).entries, undefined);
  });

  test('drops the oldest at the count bound and refuses a resume that would lose messages', () => {
    const o = new Outbox({ maxMessages: 3, maxBytes: 1e6 });
    for (let i = 0; i < 5; i++) o.append(0, `m${i}`);
    assert.equal(o.size, 3);
    assert.throws(() => o.since(1), ResumeUnavailableError);
    assert.deepEqual(
      o.since(2).map((e) => e.raw),
      ['m2', 'm3', 'm4'],
    );
  });

  test('enforces the byte bound', () => {
    const o = new Outbox({ maxMessages: 100, maxBytes: 10 });
    o.append(0, '12345');
    o.append(0, '12345');
    o.append(0, '12345');
    assert.ok(o.byteSize <= 10);
    assert.equal(o.size, 2);
  });

  test('acknowledged entries are dropped without making resume fail', () => {
    const o = new Outbox({ maxMessages: 2, maxBytes: 1e6 });
    o.append(0, 'a');
    o.append(0, 'b');
    o.ack(2);
    o.append(0, 'c');
    o.append(0, 'd');
    assert.deepEqual(
      o.since(2).map((e) => e.raw),
      ['c', 'd'],
    );
  });
});

describe('Outbox losses are per stream', () => {
  test('evicting one stream does not make another stream, or a fresh listener, fail', () => {
    const o = new Outbox({ maxMessages: 3, maxBytes: 1e6 });
    o.append(1, 'post-1a');
    o.append(1, 'post-1b');
    o.append(0, 'get-a');
    o.append(1, 'post-1c'); // evicts post-1a
    assert.throws(() => o.since(0, 1), ResumeUnavailableError, 'stream 1 lost an entry');
    assert.deepEqual(
      o.since(0, 0).map((e) => e.raw),
      ['get-a'],
      'stream 0 lost nothing',
    );
    assert.throws(() => o.since(0), ResumeUnavailableError, 'a resume of everything did lose one');
    assert.deepEqual(
      o.retainedSince(0).map((e) => e.raw),
      ['post-1b', 'get-a', 'post-1c'],
    );
  });
});

describe('Outbox positions (issue 6, defect 3)', () => {
  test('a position beyond the last seq is refused by since() and ignored by ack()', () => {
    const o = new Outbox({ maxMessages: 3, maxBytes: 1e6 });
    o.append(0, 'a');
    assert.throws(() => o.since(2), /only sent events up to 1/);
    assert.throws(() => o.since(-1), ResumeUnavailableError);
    assert.throws(() => o.since(0.5), ResumeUnavailableError);
    o.ack(100);
    assert.equal(o.size, 1, 'nothing acknowledged from the future');
    for (const raw of ['b', 'c', 'd', 'e']) o.append(0, raw);
    assert.throws(() => o.since(0), ResumeUnavailableError, 'the two evicted entries count as lost');
  });
});

describe('Outbox resume window (issue 6, defect 10)', () => {
  test('delivered entries go after the window, undelivered stay; per-stream loss records stay bounded', () => {
    const o = new Outbox({ maxMessages: 1000, maxBytes: 1e6, resumeWindowMs: 1000 });
    const t = Date.now();
    for (let stream = 1; stream <= 300; stream++) o.markDelivered(o.append(stream, `answer ${stream}`), t);
    o.append(0, 'waits for a GET stream');
    assert.equal(o.expireDelivered(t + 999), 0);
    assert.equal(o.expireDelivered(t + 1000), 300);
    assert.deepEqual(
      o.retainedSince(0).map((e) => e.raw),
      ['waits for a GET stream'],
    );
    assert.equal(o.deliveredBytes, 0);
    assert.throws(() => o.since(0, 1), ResumeUnavailableError, 'an old stream whose record went still fails');
    assert.throws(() => o.since(299, 300), ResumeUnavailableError, 'a recent one fails with its own record');
    assert.deepEqual(
      o.since(300, 300).map((e) => e.seq),
      [],
      'resuming after what it had is fine',
    );
    assert.equal(o.since(0, 0).length, 1, 'the standalone stream lost nothing');
  });

  test('a stream that keeps losing keeps its own record while many others lose too', () => {
    const o = new Outbox({ maxMessages: 2, maxBytes: 1e6 });
    let last = 0;
    for (let i = 0; i < 600; i++) {
      last = o.append(1, `progress ${i}`).seq; // the long call: its oldest entries keep being evicted
      o.append(i + 2, `answer ${i}`);
    }
    const tail = o.append(1, 'final').seq;
    assert.deepEqual(
      o.since(last, 1).map((e) => e.seq),
      [tail],
      'resuming the long stream after what it saw works',
    );
    assert.throws(() => o.since(1, 1), ResumeUnavailableError);
  });
});
