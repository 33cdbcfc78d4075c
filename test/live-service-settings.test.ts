/**
 * A service added or changed live through the admin API runs with its own mode, pool and breaker
 * settings, not the start-up defaults: a pooled stdio service added live serves several SDK
 * sessions from one child; a PATCH of its pool resizes the pool at once; switching it to
 * dedicated makes the next session spawn its own child; breaker thresholds follow a PATCH.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { PoolManager } from '../src/pool/pool-manager.service';
import { Router } from '../src/routing/router.service';
import { connectClient } from './helpers/clients';
import { everythingStdioReplica } from './helpers/everything';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { childPids, waitForNoChildren } from './helpers/leaks';
import { waitUntil } from './helpers/upstream-test-kit';

const TOKEN = 'live-settings-admin-token-0123456789';
const SERVICE = 'shared';

describe('service settings applied live (admin API)', () => {
  let gw: RunningGateway;
  let baseline: number[];
  const clients: Client[] = [];

  async function admin(method: string, path: string, body?: unknown) {
    const res = await fetch(`${gw.url}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json().catch(() => undefined)) as any };
  }

  async function session(): Promise<Client> {
    const { client } = await connectClient(gw.url, 'streamable', SERVICE);
    clients.push(client);
    return client;
  }

  async function echo(client: Client, text: string): Promise<string> {
    const result = (await client.callTool({ name: 'echo', arguments: { message: text } })) as {
      content: Array<{ text: string }>;
    };
    return result.content[0].text;
  }

  function pool() {
    const pools = gw.gateway.app.get(PoolManager).poolStats();
    assert.equal(pools.length, 1, `one pooled replica: ${JSON.stringify(pools)}`);
    return pools[0];
  }

  before(async () => {
    baseline = childPids();
    // Starts with the embedded demo only: the pooled service exists only through the admin API.
    gw = await startGateway({}, { ADMIN_TOKEN: TOKEN });
  });

  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await gw?.close();
    assert.deepEqual(await waitForNoChildren(baseline, 10_000), [], 'no child left after shutdown');
  });

  test('a pooled service added live shares one child among its sessions', async () => {
    const added = await admin('POST', `/services/${SERVICE}`, {
      mode: 'pooled',
      pool: { min: 0, max: 1, maxWaitingClients: 50, acquireTimeoutMs: 20_000 },
      breaker: { errorThresholdPercentage: 90, volumeThreshold: 7, resetTimeoutMs: 1234 },
      replicas: [everythingStdioReplica()],
    });
    assert.equal(added.status, 201, JSON.stringify(added.json));
    assert.equal(added.json.mode, 'pooled');
    assert.equal((await admin('POST', `/services/${SERVICE}`, { replicas: [] })).status, 409);

    const sessions = await Promise.all([session(), session(), session()]);
    const answers = await Promise.all(sessions.map((c, i) => echo(c, `s${i}`)));
    answers.forEach((a, i) => assert.match(a, new RegExp(`s${i}$`)));
    // Dedicated mode (the default a live-added service used to get) would hold three children.
    assert.equal(childPids(baseline).length, 1, 'one shared child serves the three sessions');
    assert.equal(pool().max, 1, "the pool has the service's own max, not the default");

    const replicaId = added.json.replicas[0].id as string;
    const breaker = gw.gateway.app.get(PoolManager).breakerSettingsFor(replicaId);
    assert.equal(breaker.volumeThreshold, 7);
    assert.equal(breaker.resetTimeoutMs, 1234);
  });

  test('a PATCH of the pool resizes it at once; a PATCH to dedicated gives the next session its own child', async () => {
    const resized = await admin('PATCH', `/services/${SERVICE}`, {
      pool: { min: 1, max: 3, maxWaitingClients: 50, acquireTimeoutMs: 20_000 },
    });
    assert.equal(resized.status, 200, JSON.stringify(resized.json));
    assert.equal(pool().max, 3, 'resized live');
    assert.equal(pool().min, 1);
    assert.equal((await admin('PATCH', `/services/${SERVICE}`, { pool: { max: 0 } })).status, 400);

    const before = childPids(baseline).length;
    assert.equal((await admin('PATCH', `/services/${SERVICE}`, { mode: 'dedicated' })).status, 200);
    assert.equal(gw.gateway.app.get(Router).serviceSettings(SERVICE)?.mode, 'dedicated');
    const own = await session();
    assert.match(await echo(own, 'mine'), /mine$/);
    await waitUntil(
      () => childPids(baseline).length === before + 1,
      10_000,
      'a child of its own for the dedicated session',
    );
    // The pooled sessions opened earlier keep their shared port.
    assert.match(await echo(clients[0], 'still pooled'), /still pooled$/);
  });
});
