/**
 * Replica pools of pooled mode, against the real app and a stdio server-everything: an
 * exhausted pool refuses at once with −31003 and retryAfterMs, a queued request is refused
 * after the acquire timeout, S3 allocate_connections resizes a pool live, a dead idle child is
 * evicted by validation on borrow, and idle upstream sessions are evicted down to the min (the
 * min itself stays).
 */
import assert from 'node:assert/strict';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { after, before, describe, test } from 'node:test';
import { PoolManager } from '../src/pool/pool-manager.service';
import type { GatewayConfigOverrides } from '../src/config/gateway-config';
import { everythingStdioReplica } from './helpers/everything';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { childPids, waitForNoChildren } from './helpers/leaks';
import { BOTH, raw, sessionHeaders } from './helpers/streamable-http-client';
import { pidAlive, waitUntil } from './helpers/upstream-test-kit';

const VERSION = '2025-11-25';

/** The JSON-RPC answer in a POST response, whether it came as JSON or as an SSE stream. */
function answerOf(text: string): any {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) return JSON.parse(trimmed);
  const data = trimmed
    .split('\n')
    .filter((l) => l.startsWith('data:') && l.slice(5).trim() !== '')
    .map((l) => JSON.parse(l.slice(5)));
  return data.find((m) => m.id !== undefined && (m.result !== undefined || m.error !== undefined));
}

async function call(base: string, sessionId: string, id: number, name: string, args: object): Promise<any> {
  const body = { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } };
  const res = await raw(base, { headers: sessionHeaders(sessionId, VERSION), body: JSON.stringify(body) });
  assert.ok(res.status === 200 || res.status === 429, `POST → ${res.status}: ${res.text}`);
  return answerOf(res.text);
}

/** initialize + initialized over raw HTTP, asserting that initialize got a result; returns the session id. */
async function openSession(base: string, version: string): Promise<string> {
  const body = {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: {
      protocolVersion: version,
      capabilities: {},
      clientInfo: { name: 'pool-test', version: '1.0.0' },
    },
  };
  const init = await raw(base, {
    headers: { 'content-type': 'application/json', accept: BOTH },
    body: JSON.stringify(body),
  });
  assert.equal(init.status, 200, init.text);
  const answer = answerOf(init.text);
  assert.ok(answer?.result?.capabilities, `initialize answered: ${init.text}`);
  const sessionId = init.headers['mcp-session-id'] as string;
  const note = await raw(base, {
    headers: sessionHeaders(sessionId, version),
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  });
  assert.equal(note.status, 202);
  return sessionId;
}

/** A tools/call that holds its upstream session for `seconds` (server-everything's long operation). */
function longCall(base: string, sessionId: string, id: number, seconds: number): Promise<any> {
  return call(base, sessionId, id, 'trigger-long-running-operation', { duration: seconds, steps: 2 });
}

function echo(base: string, sessionId: string, id: number, message: string): Promise<any> {
  return call(base, sessionId, id, 'echo', { message });
}

function pooledGateway(pool: Record<string, unknown>, extra: GatewayConfigOverrides = {}) {
  return startGateway({
    defaultService: 'everything',
    services: { everything: { mode: 'pooled', pool, replicas: [everythingStdioReplica()] } },
    ...extra,
  });
}

function poolStats(gw: RunningGateway) {
  const pools = gw.gateway.app.get(PoolManager).stats().pools;
  assert.equal(pools.length, 1, 'one replica, one pool');
  return pools[0];
}

describe('replica pools (pooled stdio server-everything)', () => {
  let baseline: number[];
  before(() => {
    baseline = childPids();
  });

  describe('exhaustion: max 1, no waiting room', () => {
    let gw: RunningGateway;
    before(async () => {
      gw = await pooledGateway({ min: 0, max: 1, maxWaitingClients: 0, acquireTimeoutMs: 10_000 });
    });
    after(() => gw?.close());

    test('a second concurrent request gets −31003 with retryAfterMs at once; new sessions still initialize', async () => {
      const a = await openSession(gw.url, VERSION);
      const holding = longCall(gw.url, a, 1, 3);
      await waitUntil(
        () => poolStats(gw).borrowed === 1,
        10_000,
        'the long call to hold the only upstream session',
      );

      // initialize is answered from the cached upstream result: no checkout, so it works while exhausted.
      const b = await openSession(gw.url, VERSION);
      const started = Date.now();
      const refused = await echo(gw.url, b, 2, 'too many');
      const waited = Date.now() - started;
      assert.equal(refused.id, 2);
      assert.equal(refused.error?.code, -31003, JSON.stringify(refused));
      assert.equal(typeof refused.error.data?.retryAfterMs, 'number');
      assert.ok(refused.error.data.retryAfterMs > 0);
      // Generous bounds for a loaded machine: "at once" means far below the 10 s acquire timeout.
      assert.ok(waited < 5000, `refused at once, not after a wait (${waited} ms)`);

      const held = await holding;
      assert.equal(held.id, 1);
      assert.ok(held.result, `the holder finished: ${JSON.stringify(held)}`);
      const later = await echo(gw.url, b, 3, 'now');
      assert.match(later.result.content[0].text, /now$/, 'served once the pool is free again');
    });
  });

  describe('acquire timeout: max 1, waiting room 10, 300 ms', () => {
    let gw: RunningGateway;
    before(async () => {
      // min 1: the child is spawned with the pool, so only the wait for a busy session is timed here
      // (the acquire timeout also bounds starting a new upstream session).
      gw = await pooledGateway({ min: 1, max: 1, maxWaitingClients: 10, acquireTimeoutMs: 300 });
    });
    after(() => gw?.close());

    test('a queued request is refused with −31003 after about the acquire timeout', async () => {
      // The first request creates the pool; wait for its child to be up before timing anything.
      await raw(gw.url, {
        headers: { 'content-type': 'application/json', accept: BOTH },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 0,
          method: 'initialize',
          params: {
            protocolVersion: VERSION,
            capabilities: {},
            clientInfo: { name: 'warm-up', version: '1' },
          },
        }),
      });
      await waitUntil(() => poolStats(gw).available === 1, 15_000, 'the min upstream session');
      const a = await openSession(gw.url, VERSION);
      const b = await openSession(gw.url, VERSION);
      const holding = longCall(gw.url, a, 1, 6);
      await waitUntil(
        () => poolStats(gw).borrowed === 1,
        10_000,
        'the long call to hold the upstream session',
      );
      const started = Date.now();
      const refused = await echo(gw.url, b, 2, 'queued');
      const waited = Date.now() - started;
      assert.equal(refused.error?.code, -31003, JSON.stringify(refused));
      assert.equal(typeof refused.error.data?.retryAfterMs, 'number');
      assert.ok(waited >= 250 && waited < 5000, `refused after the acquire timeout (waited ${waited} ms)`);
      assert.equal(poolStats(gw).pending, 0, 'the timed-out request left the wait queue');
      assert.ok((await holding).result);
    });
  });

  describe('live resize through S3', () => {
    let gw: RunningGateway;
    before(async () => {
      gw = await pooledGateway({ min: 0, max: 1, maxWaitingClients: 10, acquireTimeoutMs: 20_000 });
    });
    after(() => gw?.close());

    test('allocate_connections(stdio, 2) lets two long calls run at once on two children', async () => {
      const a = await openSession(gw.url, VERSION);
      const b = await openSession(gw.url, VERSION);
      assert.equal(poolStats(gw).max, 1);
      gw.gateway.app.get(EventEmitter2).emit('s3_control', {
        type: 'allocate_connections',
        transport: 'stdio',
        count: 2,
      });
      assert.equal(poolStats(gw).max, 2, 'the pool reports the new max');
      let most = 0;
      const sampler = setInterval(() => (most = Math.max(most, childPids(baseline).length)), 100);
      try {
        const [x, y] = await Promise.all([longCall(gw.url, a, 1, 2), longCall(gw.url, b, 1, 2)]);
        assert.ok(x.result, JSON.stringify(x));
        assert.ok(y.result, JSON.stringify(y));
      } finally {
        clearInterval(sampler);
      }
      // With max 1 the pool never holds a second child: two at once is the resize at work.
      assert.equal(most, 2, 'two children served the two calls');
      assert.equal(poolStats(gw).size, 2);
    });
  });

  describe('validation and idle eviction: min 1, max 2, a child that dies is not restarted', () => {
    let gw: RunningGateway;
    const IDLE_MS = 400;
    before(async () => {
      gw = await pooledGateway(
        {
          min: 1,
          max: 2,
          maxWaitingClients: 10,
          acquireTimeoutMs: 10_000,
          idleTimeoutMs: IDLE_MS,
          evictionRunIntervalMs: 100,
          testOnBorrow: true,
        },
        { upstream: { maxRestarts: 0 } },
      );
    });
    after(async () => {
      await gw?.close();
      assert.deepEqual(await waitForNoChildren(baseline, 10_000), [], 'no child left after shutdown');
    });

    test('idle upstream sessions are evicted down to min, and the min one is kept', async () => {
      const a = await openSession(gw.url, VERSION);
      const b = await openSession(gw.url, VERSION);
      // Sampled while the calls run: the first one done may be evicted before the second returns.
      let most = 0;
      const sampler = setInterval(() => (most = Math.max(most, poolStats(gw).size)), 50);
      try {
        const [x, y] = await Promise.all([longCall(gw.url, a, 1, 1), longCall(gw.url, b, 1, 1)]);
        assert.ok(x.result && y.result);
      } finally {
        clearInterval(sampler);
      }
      assert.equal(most, 2, 'two upstream sessions served the two calls');
      await waitUntil(
        () => poolStats(gw).size === 1 && childPids(baseline).length === 1,
        10_000,
        'eviction down to min 1',
      );
      const kept = childPids(baseline)[0];
      // Absence over time: the min session must survive many idle timeouts and eviction runs.
      await new Promise((r) => setTimeout(r, IDLE_MS * 5));
      assert.deepEqual(childPids(baseline), [kept], 'the min child was neither evicted nor replaced');
      assert.equal(poolStats(gw).size, 1);
    });

    test('a dead idle child is evicted by validation on borrow; the next request gets a new child', async () => {
      const [victim] = childPids(baseline);
      assert.ok(victim, 'an idle child to kill');
      process.kill(victim, 'SIGKILL');
      await waitUntil(
        () => !pidAlive(victim) && !childPids(baseline).includes(victim),
        5000,
        'the child to die',
      );
      const s = await openSession(gw.url, VERSION);
      const answer = await echo(gw.url, s, 1, 'after the crash');
      assert.match(answer.result?.content?.[0]?.text ?? '', /after the crash$/, JSON.stringify(answer));
      const now = childPids(baseline);
      assert.equal(now.length, 1, `one child serves: ${now.join(',')}`);
      assert.notEqual(now[0], victim, 'a new child');
      assert.equal(poolStats(gw).size, 1, 'the dead session left the pool');
    });
  });
});
