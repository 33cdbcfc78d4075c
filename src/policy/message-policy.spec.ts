import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { MessagePolicy, type PolicyCounters } from './message-policy';
import { TrustedProxies } from '../core/trusted-proxies';

const counters = (): PolicyCounters => ({
  rateLimited: { streamable: 0, sse: 0, ws: 0, admin: 0 },
  authorizationDenied: { streamable: 0, sse: 0, ws: 0, admin: 0 },
  listEntriesFiltered: 0,
});
const request = (method: string, params?: Record<string, unknown>, id: number | string = 1) => ({
  jsonrpc: '2.0' as const,
  id,
  method,
  params,
});

describe('MessagePolicy', () => {
  const policies: MessagePolicy[] = [];
  const make = (perSecond: number, burst: number, clients = {}) => {
    const c = counters();
    const p = new MessagePolicy({ enabled: true, perSecond, burst }, clients, c, new TrustedProxies([]));
    policies.push(p);
    return { p, c };
  };
  after(() => policies.forEach((p) => p.close()));

  test('only requests count: notifications and responses pass without a token', () => {
    const { p, c } = make(0.001, 1);
    assert.equal(p.check('a', { jsonrpc: '2.0', method: 'notifications/cancelled' }, 'ws'), undefined);
    assert.equal(p.check('a', { jsonrpc: '2.0', id: 1, result: {} }, 'ws'), undefined);
    assert.equal(p.check('a', request('ping'), 'ws'), undefined);
    const refusal = p.check('a', request('ping'), 'ws')!;
    assert.equal(refusal.code, -31004);
    assert.equal(refusal.status, 429);
    assert.equal(refusal.headers?.['ratelimit-policy'], '"default";q=1;w=1000');
    assert.match(refusal.headers?.ratelimit ?? '', /^"default";r=0;t=\d+$/);
    assert.equal(typeof refusal.data.retryAfterMs, 'number');
    assert.equal(c.rateLimited.ws, 1);
  });

  test('anonymous clients are keyed by address, named ones by id', () => {
    const { p } = make(0.001, 1);
    assert.equal(p.check('anonymous', request('ping'), 'streamable', '10.0.0.1'), undefined);
    assert.equal(p.check('anonymous', request('ping'), 'streamable', '10.0.0.2'), undefined);
    assert.notEqual(p.check('anonymous', request('ping'), 'streamable', '10.0.0.1'), undefined);
    // A client cannot take an address's bucket by naming itself after it.
    assert.equal(p.check('#10.0.0.1', request('ping'), 'streamable'), undefined);
  });

  test('denied calls are refused with −32602 and counted; the `*` entry covers clients without one', () => {
    const { p, c } = make(1000, 1000, { '*': { tools: { deny: ['rm*'] } }, root: {} });
    const refusal = p.check('bob', request('tools/call', { name: 'rm_rf' }), 'sse')!;
    assert.equal(refusal.code, -32602);
    assert.equal(refusal.status, 200);
    assert.deepEqual(refusal.data, { reason: 'forbidden', tool: 'rm_rf' });
    assert.equal(p.check('root', request('tools/call', { name: 'rm_rf' }), 'sse'), undefined);
    assert.equal(c.authorizationDenied.sse, 1);
    assert.equal(p.filtersAnswer('bob', 'tools/list'), true);
    assert.equal(p.filtersAnswer('bob', 'prompts/list'), false);
    assert.equal(p.filtersAnswer('root', 'tools/list'), false);
  });

  test('S5 constraints are validated as a whole', () => {
    const { p } = make(100, 100);
    assert.notDeepEqual(p.applyConstraints({ rateLimit: { perSecond: -1 } }), []);
    assert.deepEqual(p.applyConstraints({ rateLimit: { perSecond: 1, burst: 1 } }), []);
    assert.equal(p.check('x', request('ping'), 'ws'), undefined);
    assert.notEqual(p.check('x', request('ping'), 'ws'), undefined);
    assert.equal(p.adjustRateLimit('x', Number.NaN), false);
  });
});
