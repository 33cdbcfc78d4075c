import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { JSONRPCRequest } from '@modelcontextprotocol/sdk/types.js';
import { PendingRequests, idKey, isRequestMessage, isResponseMessage } from './pending-requests';

const req = (id: string | number, method = 'tools/call'): JSONRPCRequest => ({ jsonrpc: '2.0', id, method });

describe('PendingRequests', () => {
  test('tracks a request from queued to sent to confirmed, and settles it once', () => {
    const p = new PendingRequests();
    p.add(req(1));
    assert.equal(p.get(1)?.state, 'queued');
    p.markSent(1);
    assert.equal(p.get(1)?.state, 'sent');
    assert.equal(p.get(1)?.sends, 1);
    p.markConfirmed(1, 4);
    assert.equal(p.get(1)?.state, 'confirmed');
    assert.equal(p.get(1)?.stream, 4);
    assert.equal(p.settle(1)?.id, 1);
    assert.equal(p.settle(1), undefined, 'a second answer to the same id finds nothing waiting');
    assert.equal(p.size, 0);
  });

  test('keeps numeric and string ids apart', () => {
    const p = new PendingRequests();
    p.add(req(1));
    p.add(req('1'));
    assert.equal(p.size, 2);
    assert.equal(p.settle('1')?.id, '1');
    assert.equal(p.has(1), true);
    assert.notEqual(idKey(1), idKey('1'));
  });

  test('re-sends, oldest first, only what was written but never confirmed', () => {
    const p = new PendingRequests();
    for (const id of [1, 2, 3, 4]) p.add(req(id));
    p.markSent(1);
    p.markSent(2);
    p.markConfirmed(2);
    p.markSent(3);
    // 4 stays queued: it goes out with the queue, not as a re-send.
    assert.deepEqual(
      p.unconfirmed().map((r) => r.id),
      [1, 3],
    );
    p.markSent(1);
    assert.equal(p.get(1)?.sends, 2, 'a re-send is counted');
    assert.equal(p.get(1)?.state, 'sent');
  });

  test('lists the Streamable HTTP streams that still owe answers', () => {
    const p = new PendingRequests();
    p.add(req(1));
    p.add(req(2));
    p.add(req(3));
    p.markConfirmed(1, 5);
    p.markConfirmed(2, 5);
    p.markConfirmed(3, 7);
    assert.deepEqual(p.openStreams().sort(), [5, 7]);
    p.settle(3);
    assert.deepEqual(p.openStreams(), [5]);
  });

  test('a confirmation without a stream keeps the stream learned earlier', () => {
    const p = new PendingRequests();
    p.add(req(1));
    p.markConfirmed(1, 3);
    p.markConfirmed(1, undefined);
    assert.equal(p.get(1)?.stream, 3);
  });

  test('forget (cancelled by the client) means never re-sent', () => {
    const p = new PendingRequests();
    p.add(req(1));
    p.markSent(1);
    p.forget(1);
    assert.deepEqual(p.unconfirmed(), []);
  });

  test('unknown ids are ignored by every marker', () => {
    const p = new PendingRequests();
    p.markSent(9);
    p.markConfirmed(9, 1);
    p.forget(9);
    assert.equal(p.size, 0);
  });

  test('classifies messages', () => {
    assert.equal(isRequestMessage(req(1)), true);
    assert.equal(isRequestMessage({ jsonrpc: '2.0', method: 'notifications/progress' }), false);
    assert.equal(isResponseMessage({ jsonrpc: '2.0', id: 1, result: {} }), true);
    assert.equal(isResponseMessage({ jsonrpc: '2.0', id: 1, error: { code: 1, message: 'x' } }), true);
    assert.equal(isResponseMessage(req(1)), false);
  });
});
