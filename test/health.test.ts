/**
 * /health/live and /health/ready: readiness follows the replicas' breakers and states (a real
 * upstream that goes away, and breakers forced open through S3), goes false as soon as shutdown
 * starts draining while requests in flight still finish, and comes back when a replica does.
 *
 * @requires redis-server (scripts/test-setup.mjs installs or names it before any test runs)
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { Router } from '../src/routing/router.service';
import { VsmChannel, type S3Event } from '../src/vsm/vsm.channels';
import { connectClient } from './helpers/clients';
import { freePort, startEverythingHttp, type RunningEverything } from './helpers/everything';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { waitUntil } from './helpers/wait';

interface Health {
  status: number;
  body: { status: string; details: Record<string, { status: string; [k: string]: unknown }> };
}

async function health(base: string, path: string): Promise<Health> {
  const res = await fetch(`${base}${path}`);
  return { status: res.status, body: (await res.json()) as Health['body'] };
}

/** `path`'s answer once it is `status` (readiness follows breaker timers and shutdown steps). */
async function healthOnce(base: string, path: string, status: number, timeoutMs = 10_000): Promise<Health> {
  let last: Health | undefined;
  await waitUntil(
    async () => (last = await health(base, path)).status === status,
    timeoutMs,
    () => `${path} to answer ${status}; last ${last?.status} ${JSON.stringify(last?.body)}`,
    50,
  );
  return last!;
}

describe('readiness follows the replicas of an HTTP upstream', () => {
  let upstream: RunningEverything;
  let port: number;
  let gw: RunningGateway;
  const RESET_MS = 600;

  before(async () => {
    upstream = await startEverythingHttp('streamableHttp');
    port = Number(new URL(upstream.url).port);
    gw = await startGateway({
      upstream: { retryMinMs: 20, retryMaxMs: 100, maxRestarts: 0, connectTimeoutMs: 2000 },
      defaultService: 'everything',
      services: {
        everything: {
          breaker: { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeoutMs: RESET_MS },
          replicas: [{ transport: 'streamable-http', url: upstream.url }],
        },
      },
    });
  });

  after(async () => {
    await gw?.close();
    await upstream?.stop();
  });

  test('ready and live while the replica answers', async () => {
    const { client } = await connectClient(gw.url, 'streamable');
    await client.listTools();
    await client.close();
    const ready = await health(gw.url, '/health/ready');
    assert.equal(ready.status, 200);
    assert.equal(ready.body.status, 'ok');
    assert.equal(ready.body.details.shutdown.status, 'up');
    assert.equal(ready.body.details.replicas.status, 'up');
    assert.equal(ready.body.details.pools.status, 'up');
    assert.deepEqual(ready.body.details.redis, { status: 'up', configured: false });
    const live = await health(gw.url, '/health/live');
    assert.equal(live.status, 200);
    assert.equal(live.body.details.event_loop.status, 'up');
    assert.equal((await health(gw.url, '/health')).status, 200, '/health as before');
  });

  test('not ready once the only replica is gone (its breaker opened), ready again when it is back', async () => {
    await upstream.stop();
    // A new session fails to reach the replica: that outcome opens its breaker.
    await assert.rejects(connectClient(gw.url, 'streamable'));
    const down = await healthOnce(gw.url, '/health/ready', 503);
    assert.equal(down.body.status, 'error');
    assert.equal(down.body.details.replicas.status, 'down');
    const [replica] = gw.gateway.app.get(Router).replicaIds('everything');
    assert.deepEqual(down.body.details.replicas.services, { everything: { up: [], down: [replica] } });
    assert.equal(down.body.details.shutdown.status, 'up');
    assert.equal((await health(gw.url, '/health/live')).status, 200, 'the process itself is fine');
    assert.equal((await health(gw.url, '/health')).status, 200, '/health as before');

    upstream = await startEverythingHttp('streamableHttp', port);
    // After the reset timeout the breaker lets a probe through (half-open): ready, so traffic can close it.
    await healthOnce(gw.url, '/health/ready', 200);
    const { client } = await connectClient(gw.url, 'streamable');
    await client.listTools();
    await client.close();
    const up = await health(gw.url, '/health/ready');
    assert.equal(up.status, 200);
    assert.deepEqual(up.body.details.replicas.services, { everything: { up: [replica], down: [] } });
  });
});

describe('readiness with breakers forced open, and during drain', () => {
  let gw: RunningGateway;

  before(async () => {
    gw = await startGateway({
      shutdownGraceMs: 10_000,
      defaultService: 'demo',
      services: {
        demo: {
          replicas: [
            { transport: 'embedded', server: 'demo' },
            { transport: 'embedded', server: 'demo' },
          ],
        },
      },
    });
  });

  after(async () => {
    await gw?.close();
  });

  test('every replica forced open through S3: 503; back to automatic: 200', async () => {
    const emitter = gw.gateway.app.get(EventEmitter2);
    const s3 = (event: S3Event) => emitter.emit(VsmChannel.S3Control, event);
    const ids = gw.gateway.app.get(Router).replicaIds('demo');
    assert.equal(ids.length, 2);
    s3({ type: 'force_circuit_state', transport: ids[0], state: 'open' });
    const one = await health(gw.url, '/health/ready');
    assert.equal(one.status, 200, 'one replica left is enough');
    s3({ type: 'force_circuit_state', transport: 'demo', state: 'open' });
    const none = await health(gw.url, '/health/ready');
    assert.equal(none.status, 503);
    assert.deepEqual(none.body.details.replicas.services, { demo: { up: [], down: ids } });
    s3({ type: 'force_circuit_state', transport: 'demo', state: 'auto' });
    assert.equal((await health(gw.url, '/health/ready')).status, 200);
  });

  test('shutdown: not ready from its first step while a request in flight finishes', async () => {
    const { client } = await connectClient(gw.url, 'ws');
    const call = client.callTool({ name: 'long_task', arguments: { duration: 1, steps: 2 } });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await health(gw.url, '/health/ready')).status, 200);
    const closing = gw.gateway.app.close();
    const draining = await health(gw.url, '/health/ready');
    assert.equal(draining.status, 503);
    assert.equal(draining.body.details.shutdown.status, 'down');
    assert.equal(draining.body.details.replicas.status, 'up', 'only the drain makes it unready');
    assert.equal((await health(gw.url, '/health/live')).status, 200, 'live while draining');
    const result = (await call) as { content: Array<{ text: string }>; isError?: boolean };
    assert.notEqual(result.isError, true, 'the request in flight was answered');
    await closing;
  });
});

/** A throw-away redis-server on `port` (no persistence), ready when it answers. */
async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  await new Promise<void>((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`redis-server did not start: ${out}`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        ok();
      }
    });
    child.once('exit', (code) => fail(new Error(`redis-server exited (${code}): ${out}`)));
  });
  return child;
}

function stopRedis(child: ChildProcess): Promise<void> {
  return new Promise((ok) => {
    if (child.exitCode !== null || child.signalCode !== null) return ok();
    child.once('exit', () => ok());
    child.kill('SIGKILL');
  });
}

describe('readiness with REDIS_URL (the cluster Redis)', () => {
  let redis: ChildProcess | undefined;
  let gw: RunningGateway;
  let port: number;

  before(async () => {
    port = await freePort();
    redis = await startRedis(port);
    gw = await startGateway({}, { REDIS_URL: `redis://127.0.0.1:${port}` });
  });

  after(async () => {
    await gw?.close();
    if (redis) await stopRedis(redis);
  });

  test('ready while Redis answers PING, not ready while it is gone, ready again when it is back', async () => {
    const up = await healthOnce(gw.url, '/health/ready', 200);
    assert.deepEqual(up.body.details.redis, { status: 'up', configured: true });
    await stopRedis(redis!);
    const down = await healthOnce(gw.url, '/health/ready', 503);
    assert.equal(down.body.details.redis.status, 'down');
    assert.equal(down.body.details.replicas.status, 'up');
    redis = await startRedis(port);
    const again = await healthOnce(gw.url, '/health/ready', 200);
    assert.deepEqual(again.body.details.redis, { status: 'up', configured: true });
  });
});
