import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ClientUsage, MAX_TRACKED_CLIENTS } from './client-usage';

const request = (method = 'tools/list') => ({ jsonrpc: '2.0', id: 1, method }) as never;

describe('ClientUsage', () => {
  test('full of junk ids, a new client is still tracked; the least recently seen entry makes room', () => {
    const usage = new ClientUsage();
    for (let i = 0; i < MAX_TRACKED_CLIENTS; i++) usage.record(`junk-${i}`, request());
    usage.record('junk-0', request()); // seen again: now the most recent of the junk
    usage.record('alice', request('tools/call'));
    assert.equal(usage.clients.size, MAX_TRACKED_CLIENTS, 'still bounded');
    const alice = usage.clients.get('alice');
    assert.ok(alice, 'the new client is tracked');
    assert.equal(alice.requests, 1);
    assert.equal(alice.toolCalls, 1);
    assert.equal(usage.clients.get('junk-0')?.requests, 2, 'a recently seen client is kept');
    assert.equal(usage.clients.has('junk-1'), false, 'the least recently seen one went');
    // Another flood of new ids does not push out a client that keeps talking.
    for (let i = 0; i < MAX_TRACKED_CLIENTS; i++) {
      usage.record(`more-junk-${i}`, request());
      if (i % 1000 === 0) usage.record('alice', request());
    }
    assert.equal(usage.clients.size, MAX_TRACKED_CLIENTS);
    assert.equal(usage.clients.get('alice')?.requests, 11);
  });
});
