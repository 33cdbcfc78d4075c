import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ServerRequests } from './server-requests';

describe('ServerRequests', () => {
  it('takes an answer only from the client asked, once; withdraws by the upstream id', () => {
    const book = new ServerRequests<string, string>(10, 10);
    const { asked } = book.ask('up-1', 7, 'alice', 'call-1');
    assert.match(asked.gatewayId, /^gs-[0-9a-f-]{36}$/);
    assert.equal(book.answer('bob', asked.gatewayId), 'wrong_session');
    assert.equal(book.answer('alice', 'gs-1'), 'unknown_id');
    assert.equal(book.answer('alice', 7), 'unknown_id', 'the upstream id is not the client’s');
    assert.equal(book.answer('alice', asked.gatewayId), asked);
    assert.equal(book.answer('alice', asked.gatewayId), 'unknown_id', 'answered once');
    const again = book.ask('up-1', 8, 'alice', undefined).asked;
    assert.equal(book.withdraw('up-2', 8), undefined, 'another upstream session’s id 8');
    assert.equal(book.withdraw('up-1', 8), again);
    assert.equal(book.size, 0);
  });

  it('a client or an upstream session that goes takes its entries with it', () => {
    const book = new ServerRequests<string, string>(10, 10);
    book.ask('up-1', 1, 'alice', undefined);
    book.ask('up-2', 1, 'alice', undefined);
    const bobs = book.ask('up-1', 2, 'bob', undefined).asked;
    assert.deepEqual(
      book.clientGone('alice').map((a) => a.upstream),
      ['up-1', 'up-2'],
    );
    assert.deepEqual(book.upstreamGone('up-1'), [bobs]);
    assert.equal(book.size, 0);
  });

  it('bounds: the oldest entry (per client, then overall) is evicted and handed back', () => {
    const book = new ServerRequests<string, string>(3, 2);
    const a1 = book.ask('up', 1, 'alice', undefined).asked;
    book.ask('up', 2, 'alice', undefined);
    assert.deepEqual(book.ask('up', 3, 'alice', undefined).evicted, [a1], 'alice past 2');
    const b = book.ask('up', 4, 'bob', undefined);
    assert.equal(b.evicted, undefined, 'three in all: within bounds');
    const c = book.ask('up', 5, 'carol', undefined);
    assert.equal(c.evicted?.length, 1, 'four in all: the oldest overall goes');
    assert.equal(c.evicted?.[0].upstreamId, 2);
    // An upstream reusing an id it still waits on replaces the older question.
    const again = book.ask('up', 5, 'dave', undefined);
    assert.equal(again.replaced, c.asked);
    assert.equal(again.evicted, undefined);
    assert.equal(book.size, 3);
  });
});
