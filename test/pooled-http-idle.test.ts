/**
 * Pooled mode over a Streamable HTTP server-everything: 2,000 idle client sessions are held by a
 * pool of at most `max` upstream sessions (no upstream socket or GET stream per client session),
 * and sampled sessions still answer with their own answers. The 10,000-session figure is measured
 * by the bench, not here.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { PoolManager } from '../src/pool/pool-manager.service';
import { SessionService } from '../src/session/session.module';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { openSession, raw, sessionHeaders } from './helpers/streamable-http-client';
import { startEverythingHttp } from './helpers/upstream-test-kit';
import { inBatches } from './helpers/batches';

const VERSION = '2025-11-25';
const SESSIONS = Number(process.env.POOLED_IDLE_SESSIONS ?? 2000);
const SAMPLE = 50;
const POOL_MAX = 3;
const openDescriptors = () => readdirSync('/proc/self/fd').length;

/** Small seeded PRNG (mulberry32) so the sample can be replayed from the printed seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe(`pooled mode over Streamable HTTP: ${SESSIONS} idle client sessions`, () => {
  let upstream: Awaited<ReturnType<typeof startEverythingHttp>>;
  let gw: RunningGateway;

  before(async () => {
    upstream = await startEverythingHttp('streamableHttp');
    gw = await startGateway({
      defaultService: 'everything',
      services: {
        everything: {
          mode: 'pooled',
          pool: { min: 1, max: POOL_MAX, acquireTimeoutMs: 20_000 },
          replicas: [{ transport: 'streamable-http', url: `http://127.0.0.1:${upstream.port}/mcp` }],
        },
      },
    });
  });

  after(async () => {
    await gw?.close();
    await upstream?.stop();
  });

  test('all held by at most max upstream sessions; sampled sessions still answer', async (t) => {
    const before = openDescriptors();
    const sessions: string[] = new Array(SESSIONS);
    await inBatches(sessions, 20, async (_x, i) => {
      sessions[i] = await openSession(gw.url, VERSION);
    });
    assert.equal(gw.gateway.app.get(SessionService).size, SESSIONS);
    const stats = gw.gateway.app.get(PoolManager).stats();
    assert.equal(stats.open, 0, 'no dedicated upstream connection');
    assert.equal(stats.pools.length, 1);
    assert.ok(
      stats.pools[0].size >= 1 && stats.pools[0].size <= POOL_MAX,
      `pool size ${stats.pools[0].size}`,
    );
    // Idle sessions hold no upstream socket or stream of their own: descriptors do not grow with them.
    const grown = openDescriptors() - before;
    t.diagnostic(
      `pool size ${stats.pools[0].size}, descriptors +${grown}, heap ${process.memoryUsage().heapUsed >> 20} MB`,
    );
    assert.ok(grown < 100, `descriptors grew by ${grown} for ${SESSIONS} sessions`);

    const seed = Date.now() % 2 ** 31;
    t.diagnostic(`sample seed ${seed}`);
    const random = prng(seed);
    const picked = Array.from({ length: SAMPLE }, () => Math.floor(random() * SESSIONS));
    await inBatches(picked, 10, async (index, k) => {
      // Not 0: that id was the session's initialize, and a repeated id is answered from the dedupe window.
      const id = k % 2 === 0 ? k + 1 : `s-${k}`;
      const body = {
        jsonrpc: '2.0',
        id,
        method: 'tools/call',
        params: { name: 'echo', arguments: { message: `idle-${index}` } },
      };
      const res = await raw(gw.url, {
        headers: sessionHeaders(sessions[index], VERSION),
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 200, `session ${index} (seed ${seed}): ${res.text}`);
      const answer = res.text.trim().startsWith('{')
        ? JSON.parse(res.text)
        : JSON.parse(
            res.text
              .split('\n')
              .filter((l) => l.startsWith('data:') && l.includes('"result"'))[0]
              .slice(5),
          );
      assert.equal(answer.id, id, `its own id, type included: ${res.text}`);
      assert.ok(answer.result?.content, res.text);
      assert.match(answer.result.content[0].text, new RegExp(`idle-${index}$`), 'its own answer');
    });
    assert.ok(gw.gateway.app.get(PoolManager).stats().pools[0].size <= POOL_MAX);
  });
});
