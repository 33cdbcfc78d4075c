/**
 * Dedicated mode over stdio with warm processes (STDIO_WARM_PROCESSES=2): the gateway spawns two
 * server-everything children before any session; a new session is served by one of them (its pid
 * existed before the session did — proven by ending the session, which ends that child), and a
 * replacement is spawned in the background so two stay ready.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { PoolManager } from '../src/pool/pool-manager.service';
import { connectClient } from './helpers/clients';
import { everythingStdioReplica } from './helpers/everything';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { childPids, waitForNoChildren } from './helpers/leaks';
import { waitUntil } from './helpers/upstream-test-kit';

describe('warm stdio processes in dedicated mode', () => {
  let gw: RunningGateway;
  let baseline: number[];

  before(async () => {
    baseline = childPids();
    gw = await startGateway(
      { defaultService: 'everything', services: { everything: { replicas: [everythingStdioReplica()] } } },
      { STDIO_WARM_PROCESSES: '2' },
    );
  });

  after(async () => {
    await gw?.close();
    assert.deepEqual(await waitForNoChildren(baseline, 10_000), [], 'warm children end with the gateway');
  });

  test('a new session is served by a child spawned before it; the taken one is replaced', async () => {
    const pool = gw.gateway.app.get(PoolManager);
    const replicaId = pool['router'].replicaIds('everything')[0] as string;
    await waitUntil(() => pool.warm.readyCount(replicaId) === 2, 20_000, 'two warm children');
    const warmPids = childPids(baseline);
    assert.equal(warmPids.length, 2, `two children before any session: ${warmPids.join(',')}`);

    const { client, transport } = (await connectClient(gw.url, 'streamable')) as {
      client: Client;
      transport: StreamableHTTPClientTransport;
    };
    const echoed = (await client.callTool({ name: 'echo', arguments: { message: 'warm' } })) as {
      content: Array<{ text: string }>;
    };
    assert.match(echoed.content[0].text, /warm$/);

    // The taken child is replaced in the background: two ready again, three children in all.
    await waitUntil(() => pool.warm.readyCount(replicaId) === 2, 20_000, 'the replacement');
    assert.equal(childPids(baseline).length, 3);

    // Ending the session ends its child: it is one of the two that ran before the session.
    await transport.terminateSession();
    await client.close();
    await waitUntil(() => childPids(baseline).length === 2, 10_000, 'the session child to end');
    const gone = warmPids.filter((pid) => !childPids(baseline).includes(pid));
    assert.equal(gone.length, 1, `the session ran on a pre-spawned child (${warmPids.join(',')})`);
  });
});
