/**
 * The 2026-07-28 (sessionless) bridge in front of a `mode: pooled` service: its requests go
 * through the pool's port like any session's, so many sessionless clients share the pool's few
 * upstream sessions, and the one request multiplexer keeps every answer, progress notification
 * and cancellation with the request it belongs to. The upstream is a small stdio server
 * (test/fixtures/streamable-http-probe-server.ts) whose children are counted.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PoolManager } from '../src/pool/pool-manager.service';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { childPids } from './helpers/leaks';
import { messagesOf, raw, readSse, sessionlessHeaders } from './helpers/streamable-http-client';
import { inBatches, indexes } from './helpers/batches';

const MODERN = '2026-07-28';
const PROBE = join(__dirname, 'fixtures', 'streamable-http-probe-server.js');
const POOL_MAX = 2;

function toolCall(id: number | string, name: string, args: object, extraMeta: object = {}): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: {
      name,
      arguments: args,
      _meta: {
        'io.modelcontextprotocol/protocolVersion': MODERN,
        'io.modelcontextprotocol/clientCapabilities': {},
        'io.modelcontextprotocol/clientInfo': { name: 'pooled-sessionless-test', version: '1.0.0' },
        ...extraMeta,
      },
    },
  });
}

function poolOf(gw: RunningGateway, service: string) {
  const pools = gw.gateway.app.get(PoolManager).stats().pools as Array<{ replica: string; size: number }>;
  return pools.filter((p) => p.replica.startsWith(service));
}

describe('2026-07-28 bridge over a pooled service', () => {
  let gw: RunningGateway;
  let baseline: number[];

  before(async () => {
    baseline = childPids();
    const pool = {
      min: 0,
      acquireTimeoutMs: 20_000,
      maxWaitingClients: 5000,
      idleTimeoutMs: 60_000,
      evictionRunIntervalMs: 1000,
    };
    const probe = { transport: 'stdio' as const, command: process.execPath, args: [PROBE] };
    gw = await startGateway({
      defaultService: 'shared',
      services: {
        shared: { mode: 'pooled', pool: { ...pool, max: POOL_MAX }, replicas: [{ ...probe }] },
        // One upstream session: the cancellation the upstream saw can be asked of the same process.
        solo: { mode: 'pooled', pool: { ...pool, max: 1, maxConcurrentPerConnection: 4 }, replicas: [probe] },
        // One upstream session, no waiting room: a second request is refused at once.
        tight: { mode: 'pooled', pool: { ...pool, max: 1, maxWaitingClients: 0 }, replicas: [probe] },
      },
    });
  });

  after(async () => {
    await gw?.close();
  });

  it(`many sessionless client ids calling at once share at most ${POOL_MAX} upstream children`, async () => {
    const COUNT = 300;
    let maxChildren = 0;
    await inBatches(indexes(COUNT), 60, async (i) => {
      const res = await raw(gw.url, {
        path: '/mcp/shared',
        headers: sessionlessHeaders('tools/call', `many-${i}`, 'echo'),
        body: toolCall(i, 'echo', { text: `client ${i}` }),
      });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.id, i);
      assert.equal(res.json.result.content[0].text, `client ${i}`);
      if (i % 20 === 0) maxChildren = Math.max(maxChildren, childPids(baseline).length);
    });
    maxChildren = Math.max(maxChildren, childPids(baseline).length);
    assert.ok(maxChildren >= 1 && maxChildren <= POOL_MAX, `children seen: ${maxChildren}`);
    const pools = poolOf(gw, 'shared');
    assert.equal(pools.length, 1);
    assert.ok(pools[0].size <= POOL_MAX, `pool size ${pools[0].size}`);
  });

  it('two sessionless clients sending the same ids at once each get exactly their own answers, id types kept', async () => {
    const calls: Array<{ client: string; id: number | string; text: string }> = [];
    for (let round = 0; round < 20; round++) {
      for (const client of ['alice', 'bob']) {
        calls.push({ client, id: 1, text: `${client} number ${round}` });
        calls.push({ client, id: '1', text: `${client} string ${round}` });
      }
    }
    const answers = await Promise.all(
      calls.map((c) =>
        raw(gw.url, {
          path: '/mcp/shared',
          headers: sessionlessHeaders('tools/call', c.client, 'echo'),
          body: toolCall(c.id, 'echo', { text: c.text }),
        }),
      ),
    );
    answers.forEach((res, i) => {
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.id, calls[i].id, 'the id comes back exactly');
      assert.equal(typeof res.json.id, typeof calls[i].id, 'numbers stay numbers, strings stay strings');
      assert.equal(res.json.result.content[0].text, calls[i].text, 'its own answer');
    });
  });

  it('progress of concurrent sessionless requests reaches each its own response stream', async () => {
    const COUNT = 12;
    const STEPS = 4;
    const streams = await Promise.all(
      Array.from({ length: COUNT }, async (_x, i) => {
        // Half share one progress token value, on different clients and on the same one.
        const token = i % 2 === 0 ? 'tok' : `tok-${i}`;
        const res = await fetch(`${gw.url}/mcp/shared`, {
          method: 'POST',
          headers: sessionlessHeaders('tools/call', i < COUNT / 2 ? 'carol' : `dave-${i}`, 'steps'),
          body: toolCall(
            i % 3 === 0 ? 7 : `r${i}`,
            'steps',
            { text: `stream ${i}`, count: STEPS },
            {
              progressToken: token,
            },
          ),
        });
        assert.equal(res.status, 200);
        return { i, token, messages: messagesOf((await readSse(res)).events) };
      }),
    );
    for (const { i, token, messages } of streams) {
      const progress = messages.filter((m) => m.method === 'notifications/progress');
      assert.deepEqual(
        progress.map((m) => [m.params.progressToken, m.params.progress, m.params.message]),
        Array.from({ length: STEPS }, (_x, k) => [token, k + 1, `stream ${i}`]),
        `stream ${i} got its own progress, with its own token`,
      );
      const answer = messages.at(-1);
      assert.equal(answer.id, i % 3 === 0 ? 7 : `r${i}`);
      assert.equal(answer.result.content[0].text, `stream ${i}`);
    }
  });

  it('closing a sessionless response cancels the request upstream, under the id the upstream knows', async () => {
    const controller = new AbortController();
    const res = await fetch(`${gw.url}/mcp/solo`, {
      method: 'POST',
      headers: sessionlessHeaders('tools/call', 'erin', 'wait_for_cancel'),
      body: toolCall(1, 'wait_for_cancel', {}, { progressToken: 'w' }),
      signal: controller.signal,
    });
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    const first = messagesOf((await readSse(res, (events) => events.length >= 1)).events)[0];
    assert.equal(first.method, 'notifications/progress');
    assert.equal(first.params.progressToken, 'w', 'the client’s token restored');
    const upstreamId = /^request (.+)$/.exec(first.params.message)?.[1];
    assert.ok(upstreamId, first.params.message);
    assert.notEqual(upstreamId, '1', 'the upstream sees a gateway id, never the client’s');
    controller.abort();

    let seen: Array<{ requestId: string | number; reason: string }> = [];
    for (let i = 0; i < 50 && seen.length === 0; i++) {
      await sleep(50);
      const probe = await raw(gw.url, {
        path: '/mcp/solo',
        headers: sessionlessHeaders('tools/call', 'frank', 'cancellations'),
        body: toolCall(`c${i}`, 'cancellations', {}),
      });
      assert.equal(probe.status, 200, probe.text);
      seen = JSON.parse(probe.json.result.content[0].text);
    }
    assert.equal(seen.length, 1, 'the upstream saw exactly one cancellation');
    assert.equal(seen[0].requestId, upstreamId, 'notifications/cancelled names the gateway id it was sent');
    assert.match(seen[0].reason, /closed the response stream/);
  });

  it('a sessionless request the exhausted pool refuses gets HTTP 429 with Retry-After and −31003', async () => {
    const controller = new AbortController();
    const holder = await fetch(`${gw.url}/mcp/tight`, {
      method: 'POST',
      headers: sessionlessHeaders('tools/call', 'gina', 'wait_for_cancel'),
      body: toolCall('hold', 'wait_for_cancel', {}, { progressToken: 'h' }),
      signal: controller.signal,
    });
    // The first progress says the holder runs upstream (the only upstream session is checked out).
    await readSse(holder, (events) => events.length >= 1);
    const refused = await raw(gw.url, {
      path: '/mcp/tight',
      headers: sessionlessHeaders('tools/call', 'hank', 'echo'),
      body: toolCall(2, 'echo', { text: 'no room' }),
    });
    assert.equal(refused.status, 429, refused.text);
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal(refused.json.id, 2);
    assert.equal(refused.json.error.code, -31003);
    assert.equal(typeof refused.json.error.data.retryAfterMs, 'number');
    controller.abort();
    // Once the holder is cancelled the pool serves again.
    let res = refused;
    for (let i = 0; i < 50 && res.status !== 200; i++) {
      await sleep(50);
      res = await raw(gw.url, {
        path: '/mcp/tight',
        headers: sessionlessHeaders('tools/call', 'hank', 'echo'),
        body: toolCall(2, 'echo', { text: 'room again' }),
      });
    }
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.result.content[0].text, 'room again');
  });
});
