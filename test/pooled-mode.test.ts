/**
 * Pooled mode: client sessions share a few upstream sessions. Over a stdio server-everything
 * with a pool of at most 2 children: many client sessions, each gets only its own answers with
 * its own ids (numbers stay numbers, strings stay strings); a sampling request raised inside
 * one client's call reaches that client alone; resources/updated reaches subscribers only; and
 * once every session is gone no child is left beyond the pool's min.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  CreateMessageRequestSchema,
  ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { PoolManager } from '../src/pool/pool-manager.service';
import { SessionService } from '../src/session/session.module';
import { transportFor } from './helpers/clients';
import { everythingStdioReplica } from './helpers/everything';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { childPids, waitForNoChildren } from './helpers/leaks';
import { openSession, raw, sessionHeaders } from './helpers/streamable-http-client';
import { inBatches } from './helpers/batches';

const VERSION = '2025-11-25';
const POOL_MAX = 2;

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

async function postCall(base: string, sessionId: string, body: object): Promise<any> {
  const res = await raw(base, { headers: sessionHeaders(sessionId, VERSION), body: JSON.stringify(body) });
  assert.equal(res.status, 200, res.text);
  return answerOf(res.text);
}

describe('pooled mode over a stdio server-everything', () => {
  let gw: RunningGateway;
  let baselineChildren: number[];

  before(async () => {
    baselineChildren = childPids();
    gw = await startGateway({
      defaultService: 'everything',
      services: {
        everything: {
          mode: 'pooled',
          pool: {
            min: 0,
            max: POOL_MAX,
            acquireTimeoutMs: 20_000,
            maxWaitingClients: 5000,
            idleTimeoutMs: 1000,
            evictionRunIntervalMs: 250,
          },
          replicas: [everythingStdioReplica()],
        },
      },
    });
  });

  after(async () => {
    await gw?.close();
  });

  test(`1,000 client sessions on at most ${POOL_MAX} children; each gets its own answers and ids`, async () => {
    const COUNT = Number(process.env.POOLED_COUNT ?? 1000);
    const sessions: string[] = [];
    let maxChildren = 0;
    await inBatches(Array.from({ length: COUNT }), 25, async (_x, i) => {
      const sessionId = await openSession(gw.url, VERSION);
      sessions[i] = sessionId;
      // Even sessions use numeric ids, odd ones strings; the same id values on many sessions.
      const id = i % 2 === 0 ? 7 : '7';
      const answer = await postCall(gw.url, sessionId, {
        jsonrpc: '2.0',
        id,
        method: 'tools/call',
        params: { name: 'echo', arguments: { message: `session-${i}` } },
      });
      assert.equal(answer.id, id, 'the id comes back exactly (type included)');
      assert.equal(typeof answer.id, typeof id);
      assert.match(answer.result.content[0].text, new RegExp(`session-${i}$`), 'its own answer');
      if (i % 100 === 0) maxChildren = Math.max(maxChildren, childPids(baselineChildren).length);
    });
    assert.ok(maxChildren >= 1 && maxChildren <= POOL_MAX, `children seen: ${maxChildren}`);
    const stats = gw.gateway.app.get(PoolManager).stats().pools;
    assert.equal(stats.length, 1);
    assert.ok(stats[0].size <= POOL_MAX, `pool size ${stats[0].size}`);
    assert.equal(stats[0].max, POOL_MAX);

    await inBatches(sessions, 25, async (sessionId) => {
      const res = await raw(gw.url, { method: 'DELETE', headers: sessionHeaders(sessionId, VERSION) });
      assert.ok(res.status === 200 || res.status === 204, `DELETE → ${res.status}`);
    });
    assert.equal(gw.gateway.app.get(SessionService).size, 0);
  });

  test('a sampling request raised inside one client call reaches that client alone', async () => {
    const asked: string[] = [];
    const clients = await Promise.all(
      ['alice', 'bob', 'carol'].map(async (name) => {
        const client = new Client({ name, version: '1.0.0' }, { capabilities: { sampling: {} } });
        client.setRequestHandler(CreateMessageRequestSchema, async () => {
          asked.push(name);
          return { role: 'assistant', content: { type: 'text', text: `answer for ${name}` }, model: 't' };
        });
        await client.connect(
          transportFor(gw.url, name === 'bob' ? 'ws' : name === 'carol' ? 'sse' : 'streamable'),
        );
        return { name, client };
      }),
    );
    const bob = clients[1].client;
    const result = (await bob.callTool({
      name: 'trigger-sampling-request',
      arguments: { prompt: 'hello', maxTokens: 5 },
    })) as { content: Array<{ text: string }> };
    assert.deepEqual(asked, ['bob']);
    assert.match(JSON.stringify(result.content), /answer for bob/);
    await Promise.all(clients.map(({ client }) => client.close()));
  });

  test('resources/updated reaches only the subscribers of that URI', async () => {
    const updates = new Map<string, string[]>();
    const connect = async (name: string) => {
      const client = new Client({ name, version: '1.0.0' }, { capabilities: {} });
      updates.set(name, []);
      client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
        updates.get(name)!.push(n.params.uri);
      });
      await client.connect(transportFor(gw.url, 'ws'));
      return client;
    };
    const subscriber = await connect('subscriber');
    const bystander = await connect('bystander');
    const { resources } = await subscriber.listResources();
    const uri = resources[0].uri;
    await subscriber.subscribeResource({ uri });
    // server-everything sends updates for subscribed resources every 5 s once toggled on.
    await subscriber.callTool({ name: 'toggle-subscriber-updates', arguments: {} });
    const deadline = Date.now() + 15_000;
    while (updates.get('subscriber')!.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(updates.get('subscriber')!.includes(uri), 'the subscriber got its update');
    assert.deepEqual(updates.get('bystander'), [], 'the bystander got none');
    await subscriber.callTool({ name: 'toggle-subscriber-updates', arguments: {} });
    await Promise.all([subscriber.close(), bystander.close()]);
  });

  test('after every session closed, idle eviction leaves no child beyond the pool min (0)', async () => {
    // SDK clients over WebSocket and legacy SSE just disconnect; end what they left behind.
    gw.gateway.app.get(SessionService).closeAll('test over');
    const left = await waitForNoChildren(baselineChildren, 15_000);
    assert.deepEqual(left, [], 'idle upstream sessions were evicted');
    assert.equal(gw.gateway.app.get(PoolManager).stats().pools[0].size, 0);
  });
});
