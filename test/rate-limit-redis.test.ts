/**
 * Rate limits shared through a real redis-server (started here on a free loopback port, killed by
 * PID): two gateways enforce one client limit together; with Redis gone, fail-open gateways go on
 * limiting alone (insurance limiter) and fail-closed ones refuse.
 *
 * @requires redis-server (scripts/test-setup.mjs installs or names it before any test runs)
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { MessagePolicy } from '../src/policy/message-policy';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { connectAs } from './helpers/policy-clients';
import { waitUntil } from './helpers/wait';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start in 5 s')), 5000);
    let seen = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)));
  });
  child.stdout!.resume();
  return child;
}

async function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(child.pid, 'SIGKILL');
  await exited;
}

async function served(client: Client): Promise<boolean> {
  try {
    await client.ping();
    return true;
  } catch {
    return false;
  }
}

function redisReady(gw: RunningGateway): boolean {
  return gw.gateway.app.get(MessagePolicy).limiter.shared?.redis.status === 'ready';
}

describe('rate limits shared through Redis', () => {
  let redis: ChildProcess;
  let url: string;
  let a: RunningGateway;
  let b: RunningGateway;
  let closed: RunningGateway;
  before(async () => {
    const port = await freePort();
    redis = await startRedis(port);
    url = `redis://127.0.0.1:${port}`;
    const limits = {
      clients: {
        // 10 per 10 s: a slow (loaded) run cannot reach the next window.
        shared: { rateLimit: { perSecond: 1, burst: 10 } },
        insured: { rateLimit: { perSecond: 0.01, burst: 4 } },
        strict: { rateLimit: { perSecond: 1000, burst: 1000 } },
      },
    };
    const rateLimit = { enabled: true, perSecond: 1000, burst: 1000, redisUrl: url, syncIntervalMs: 5 };
    a = await startGateway({ rateLimit: { ...rateLimit, redisFailMode: 'open' }, ...limits });
    b = await startGateway({ rateLimit: { ...rateLimit, redisFailMode: 'open' }, ...limits });
    closed = await startGateway({ rateLimit: { ...rateLimit, redisFailMode: 'closed' }, ...limits });
    await waitUntil(() => [a, b, closed].every(redisReady), 5000, 'the gateways to reach Redis');
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close(), closed?.close()]);
    if (redis) await stopRedis(redis);
  });

  test('two gateways enforce one client limit together', async () => {
    const ca = await connectAs(a.url, 'streamable', 'shared'); // one token each for initialize
    const cb = await connectAs(b.url, 'streamable', 'shared');
    try {
      let ok = 2;
      for (let i = 0; i < 15; i++) {
        if (await served(ca.client)) ok++;
        if (await served(cb.client)) ok++;
      }
      const refusedA = a.gateway.app.get(GatewayMetrics).rateLimited.streamable;
      const refusedB = b.gateway.app.get(GatewayMetrics).rateLimited.streamable;
      // Alone, each gateway would serve 10 (20 together); shared, the cluster serves about 10:
      // a node may overshoot by what it grants within one sync interval.
      assert.ok(ok >= 10 && ok <= 15, `served ${ok} of 32`);
      assert.ok(refusedA > 0 && refusedB > 0, `refused ${refusedA} + ${refusedB}`);
    } finally {
      await ca.client.close();
      await cb.client.close();
    }
  });

  test('Redis gone: fail-open limits each node alone, fail-closed refuses', async () => {
    const insured = await connectAs(a.url, 'ws', 'insured'); // 1 of 4
    const strict = await connectAs(closed.url, 'ws', 'strict');
    try {
      assert.equal(await served(strict.client), true);
      await stopRedis(redis);
      await waitUntil(() => !redisReady(a) && !redisReady(closed), 5000, 'the gateways to notice');
      // Fail-open: the node goes on with its own limit (3 tokens left, then refused).
      assert.equal(await served(insured.client), true);
      assert.equal(await served(insured.client), true);
      assert.equal(await served(insured.client), true);
      assert.equal(await served(insured.client), false);
      // Fail-closed: every request is refused while Redis is away, with −31004 and a wait.
      const err = await strict.client.ping().then(
        () => undefined,
        (e: { code?: number; message?: string; data?: { retryAfterMs?: number } }) => e,
      );
      assert.equal(err?.code, -31004);
      assert.match(err?.message ?? '', /Rate limiter unavailable/);
      assert.equal(err?.data?.retryAfterMs, 1000);
    } finally {
      await insured.client.close();
      await strict.client.close();
    }
  });
});
