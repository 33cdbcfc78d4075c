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
import WebSocket from 'ws';
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

/** The last POST's HTTP status and Retry-After, for the assertions on how a refusal arrived. */
let lastHttp: { status: number; retryAfter: string | undefined; contentType: string | undefined } = {
  status: 0,
  retryAfter: undefined,
  contentType: undefined,
};

async function call(
  base: string,
  sessionId: string,
  id: number,
  name: string,
  args: object,
  version = VERSION,
): Promise<any> {
  const body = { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } };
  const res = await raw(base, { headers: sessionHeaders(sessionId, version), body: JSON.stringify(body) });
  assert.ok(res.status === 200 || res.status === 429, `POST → ${res.status}: ${res.text}`);
  lastHttp = {
    status: res.status,
    retryAfter: res.headers['retry-after'] as string | undefined,
    contentType: res.headers['content-type'] as string | undefined,
  };
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

function echo(base: string, sessionId: string, id: number, message: string, version = VERSION): Promise<any> {
  return call(base, sessionId, id, 'echo', { message }, version);
}

function initializeBody(id: string | number, version: string) {
  return {
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'pool-test', version: '1' } },
  };
}

/** A raw WebSocket MCP connection: one request at a time, answers by id, the close code once closed. */
interface WsPeer {
  socket: WebSocket;
  request(message: { id: string | number } & Record<string, unknown>): Promise<any>;
  closed: Promise<number>;
  closeCode: number | undefined;
}

async function wsSocket(base: string): Promise<WsPeer> {
  const socket = new WebSocket(`${base.replace(/^http/, 'ws')}/ws`, 'mcp');
  const waiting = new Map<string | number, (m: any) => void>();
  const peer: WsPeer = {
    socket,
    closeCode: undefined,
    closed: new Promise((resolve) =>
      socket.on('close', (code) => {
        peer.closeCode = code;
        resolve(code);
      }),
    ),
    request(message) {
      return new Promise((resolve) => {
        waiting.set(message.id, resolve);
        socket.send(JSON.stringify(message));
      });
    },
  };
  socket.on('message', (data) => {
    const m = JSON.parse(String(data));
    const done = m.id !== undefined ? waiting.get(m.id) : undefined;
    if (done && (m.result !== undefined || m.error !== undefined)) {
      waiting.delete(m.id);
      done(m);
    }
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return peer;
}

/** A WebSocket session that has initialized. */
async function wsSession(base: string): Promise<WsPeer> {
  const peer = await wsSocket(base);
  const init = await peer.request(initializeBody('init', VERSION));
  assert.ok(init.result?.capabilities, JSON.stringify(init));
  peer.socket.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
  return peer;
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
      // Nothing of the response was written before the refusal: it is an HTTP 429 with Retry-After.
      assert.equal(lastHttp.status, 429);
      assert.equal(lastHttp.contentType, 'application/json');
      assert.equal(lastHttp.retryAfter, String(Math.ceil(refused.error.data.retryAfterMs / 1000)));
      // Generous bounds for a loaded machine: "at once" means far below the 10 s acquire timeout.
      assert.ok(waited < 5000, `refused at once, not after a wait (${waited} ms)`);

      // A retry with the same id is carried again (a refusal is not kept as the request's answer).
      const retried = await echo(gw.url, b, 2, 'too many');
      assert.equal(retried.error?.code, -31003, 'still exhausted while the long call holds the pool');
      assert.equal(lastHttp.status, 429);

      const held = await holding;
      assert.equal(held.id, 1);
      assert.ok(held.result, `the holder finished: ${JSON.stringify(held)}`);
      assert.equal(lastHttp.status, 200, 'the holder was answered with 200');
      const later = await echo(gw.url, b, 2, 'now');
      assert.equal(lastHttp.status, 200);
      assert.match(later.result.content[0].text, /now$/, 'the same id, served once the pool is free again');
    });

    test('WebSocket: a request gets −31003 in-band; a new session whose initialize gets no upstream closes 1013', async () => {
      const a = await openSession(gw.url, VERSION);
      const holding = longCall(gw.url, a, 1, 2);
      await waitUntil(() => poolStats(gw).borrowed === 1, 10_000, 'the long call to hold the pool');
      const ws = await wsSession(gw.url);
      const refused = await ws.request({
        jsonrpc: '2.0',
        id: 'w1',
        method: 'tools/call',
        params: { name: 'echo', arguments: { message: 'x' } },
      });
      assert.equal(refused.error?.code, -31003, JSON.stringify(refused));
      assert.equal(typeof refused.error.data?.retryAfterMs, 'number');
      assert.equal(ws.closeCode, undefined, 'an established session stays open after a refused request');
      ws.socket.close(1000);
      assert.ok((await holding).result);
    });
  });

  describe('a new session that cannot get an upstream: max 1, no waiting room, nothing started yet', () => {
    let gw: RunningGateway;
    before(async () => {
      gw = await pooledGateway({ min: 0, max: 1, maxWaitingClients: 0, acquireTimeoutMs: 10_000 });
    });
    after(() => gw?.close());

    test('a WebSocket session whose initialize gets no upstream gets −31003 and close 1013; HTTP gets 429', async () => {
      // The first initialize starts the only upstream session (a child spawn); while it starts the
      // pool is at max with no waiting room, and no initialize result is cached yet.
      const first = await wsSocket(gw.url);
      const second = await wsSocket(gw.url);
      const starting = first.request(initializeBody('i1', VERSION));
      const pools = () => gw.gateway.app.get(PoolManager).stats().pools;
      await waitUntil(() => pools()[0]?.size === 1, 10_000, 'the first upstream session to be starting');
      assert.equal(pools()[0].available, 0, 'still starting: nothing cached, nothing free');

      const refused = await second.request(initializeBody('i2', VERSION));
      assert.equal(refused.error?.code, -31003, JSON.stringify(refused));
      assert.equal(typeof refused.error.data?.retryAfterMs, 'number');
      assert.equal(await second.closed, 1013, 'the refused new session closes with 1013 (try again later)');

      const http = await raw(gw.url, {
        headers: { 'content-type': 'application/json', accept: BOTH },
        body: JSON.stringify(initializeBody(7, '2025-06-18')),
      });
      assert.equal(http.status, 429, http.text);
      assert.ok(Number(http.headers['retry-after']) >= 1);
      assert.equal(http.headers['mcp-session-id'], undefined, 'no session is handed out');
      assert.equal(http.json?.error?.code, -31003);
      assert.equal(http.json?.id, 7);

      const served = await starting;
      assert.ok(served.result?.capabilities, JSON.stringify(served));
      assert.equal(first.closeCode, undefined, 'the served session stays open');
      // Once an upstream session has started its initialize result is cached: new sessions open.
      const third = await wsSocket(gw.url);
      const later = await third.request(initializeBody('i3', VERSION));
      assert.ok(later.result?.capabilities, JSON.stringify(later));
      for (const w of [first, third]) w.socket.close(1000);
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
      // The 2025-11-25 stream held its priming event back while the request waited for a checkout,
      // so the refusal is still an HTTP 429 with Retry-After, the JSON-RPC error as its body.
      assert.equal(lastHttp.status, 429);
      assert.equal(lastHttp.retryAfter, '1');
      assert.match(String(lastHttp.contentType), /^application\/json/);
      assert.equal(poolStats(gw).pending, 0, 'the timed-out request left the wait queue');
      assert.ok((await holding).result);
    });
  });

  describe('a queued request that gets its checkout: max 1, waiting room 10, 10 s', () => {
    let gw: RunningGateway;
    before(async () => {
      gw = await pooledGateway({ min: 1, max: 1, maxWaitingClients: 10, acquireTimeoutMs: 10_000 });
    });
    after(() => gw?.close());

    test('waits for the busy upstream session, then is answered on a primed SSE stream', async () => {
      const a = await openSession(gw.url, VERSION);
      const b = await openSession(gw.url, VERSION);
      await waitUntil(() => poolStats(gw).available === 1, 15_000, 'the min upstream session');
      const holding = longCall(gw.url, a, 1, 1);
      await waitUntil(
        () => poolStats(gw).borrowed === 1,
        10_000,
        'the long call to hold the upstream session',
      );
      const started = Date.now();
      const res = await raw(gw.url, {
        headers: sessionHeaders(b, VERSION),
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 'queued-1',
          method: 'tools/call',
          params: { name: 'echo', arguments: { message: 'after the wait' } },
        }),
      });
      const waited = Date.now() - started;
      assert.equal(res.status, 200, res.text);
      assert.match(String(res.headers['content-type']), /^text\/event-stream/);
      // The priming event (an id, empty data) still opens the stream, ahead of the answer.
      const first = res.text.split('\n\n').find((e) => /^data:/m.test(e));
      assert.match(String(first), /^id: \S+$/m, res.text);
      assert.match(String(first), /^data: ?$/m, res.text);
      const answer = answerOf(res.text);
      assert.equal(answer.id, 'queued-1');
      assert.match(answer.result.content[0].text, /after the wait/);
      assert.ok(waited >= 200, `it waited for the long call (${waited} ms)`);
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
