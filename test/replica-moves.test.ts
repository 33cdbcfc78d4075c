/**
 * Replica moves in dedicated mode, counted at the upstreams (test/fixtures/counting-server.ts
 * records every message each replica receives):
 * - a SIGKILLed Streamable HTTP replica: its sessions' next call never reached it (connect
 *   refused), so it goes to the other replica whatever its idempotency, and every later call is
 *   served there (issue 14, defect 3);
 * - a drain that starts while requests arrive: each request runs exactly once, on the new
 *   replica, and none is both refused and executed (defect 4);
 * - a drain (or an opened breaker) during a long call: the call is answered by the drained
 *   replica, the same session's ping meanwhile goes to the new one, and the old upstream session is
 *   released once the call is answered — or, past REPLICA_DRAIN_GRACE_MS, the call gets the
 *   documented error (defect 5);
 * - pooled mode: calls that never reached a dead replica go to the other one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { ErrorCode } from '../libs/protocol/src';
import { DRAIN_GRACE_MESSAGE } from '../src/pool/dedicated-port';
import { VsmChannel } from '../src/vsm/vsm.channels';
import { endpointFor } from './helpers/clients';
import { CountingReplica, recordDir, type CountingTransport } from './helpers/counting-replicas';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { childPids, waitForNoChildren } from './helpers/leaks';

const TOKEN = 'replica-moves-admin-token';
const FAST_UPSTREAM = { retryMinMs: 20, retryMaxMs: 100, maxRestarts: 1, connectTimeoutMs: 3000 };

function text(result: unknown): string {
  return (result as { content: Array<{ text: string }> }).content[0].text;
}

async function connect(gw: RunningGateway, clientId: string) {
  const client = new Client({ name: 'replica-moves', version: '1.0.0' });
  const url = endpointFor(gw.url, 'streamable');
  url.searchParams.set('client_id', clientId);
  await client.connect(new StreamableHTTPClientTransport(url));
  return client;
}

/** `count` (may have effects) or `count_idempotent`; resolves with the answer's text or the error. */
async function count(
  client: Client,
  key: string,
  options: { ms?: number; tool?: 'count' | 'count_idempotent' } = {},
): Promise<string | McpError> {
  try {
    const result = await client.callTool(
      { name: options.tool ?? 'count', arguments: { key, ms: options.ms ?? 0 } },
      undefined,
      { timeout: 20_000 },
    );
    return text(result);
  } catch (err) {
    if (err instanceof McpError) return err;
    throw err;
  }
}

async function setDraining(gw: RunningGateway, replica: string, draining: boolean): Promise<void> {
  const res = await fetch(`${gw.url}/admin/services/count/replicas/${replica}`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ draining }),
  });
  assert.equal(res.status, 200, await res.text());
}

async function gatewayOver(
  replicas: CountingReplica[],
  env: Record<string, string> = {},
  service: Record<string, unknown> = {},
): Promise<RunningGateway> {
  return startGateway(
    {
      upstream: FAST_UPSTREAM,
      defaultService: 'count',
      services: { count: { ...service, replicas: replicas.map((r) => r.config()) } },
    },
    { ADMIN_TOKEN: TOKEN, ...env },
  );
}

/** How many times each key reached any of the replicas. */
function keyCounts(replicas: CountingReplica[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of replicas) for (const k of r.keys()) counts.set(k, (counts.get(k) ?? 0) + 1);
  return counts;
}

/** A client id whose sessions the ring places on `replica` (answers name the replica). */
async function clientOn(gw: RunningGateway, replica: string, prefix: string): Promise<Client> {
  for (let i = 0; i < 64; i++) {
    const client = await connect(gw, `${prefix}-${i}`);
    const answer = await count(client, `${prefix}-probe-${i}`, { tool: 'count_idempotent' });
    if (typeof answer === 'string' && answer.startsWith(`${replica} `)) return client;
    await client.close();
  }
  throw new Error(`no client id of ${prefix} lands on ${replica}`);
}

describe('defect 3: a replica that dies (SIGKILL) under two Streamable HTTP replicas', () => {
  const dir = recordDir();
  let replicas: CountingReplica[] = [];
  let gw: RunningGateway;

  before(async () => {
    replicas = await Promise.all(
      ['h1', 'h2'].map((n) => CountingReplica.create(n, 'streamable-http', dir.path)),
    );
    gw = await gatewayOver(replicas);
  });

  after(async () => {
    await gw?.close();
    await Promise.all(replicas.map((r) => r.kill()));
    dir.remove();
  });

  test('10 sessions with distinct client ids: every call after the kill succeeds, each ran once', async () => {
    const clients = await Promise.all(Array.from({ length: 10 }, (_, i) => connect(gw, `tenant-${i}`)));
    const servedBy = await Promise.all(
      clients.map(async (c, i) => {
        const answer = await count(c, `before-${i}`);
        assert.equal(typeof answer, 'string', String(answer));
        return (answer as string).split(' ')[0];
      }),
    );
    const onH1 = servedBy.filter((r) => r === 'h1').length;
    const victim = onH1 >= 5 ? replicas[0] : replicas[1];
    const survivor = victim === replicas[0] ? replicas[1] : replicas[0];
    assert.ok(
      servedBy.some((r) => r === victim.name),
      `no session on ${victim.name}: ${servedBy.join(',')}`,
    );
    await victim.kill();
    const victimKeys = victim.keys().length;

    // One non-idempotent call per session per round, as the measurement did; each must succeed on
    // the survivor — the first one after the kill never reached the dead replica (connect refused).
    for (let round = 0; round < 4; round++) {
      const answers = await Promise.all(clients.map((c, i) => count(c, `after-${round}-${i}`)));
      answers.forEach((a, i) => {
        assert.equal(typeof a, 'string', `round ${round}, session ${i} (${servedBy[i]}): ${String(a)}`);
        assert.equal(a, `${survivor.name} after-${round}-${i}`);
      });
      await sleep(200);
    }
    assert.equal(victim.keys().length, victimKeys, 'nothing reached the dead replica');
    for (const [key, n] of keyCounts(replicas)) assert.equal(n, 1, `${key} ran ${n} times`);
    await Promise.all(clients.map((c) => c.close()));
  });
});

for (const transport of ['stdio', 'streamable-http'] as CountingTransport[]) {
  describe(`defects 4 and 5: draining the session's replica (${transport})`, () => {
    const dir = recordDir();
    let replicas: CountingReplica[] = [];
    let gw: RunningGateway;

    before(async () => {
      replicas = await Promise.all(['d1', 'd2'].map((n) => CountingReplica.create(n, transport, dir.path)));
      gw = await gatewayOver(replicas);
    });

    after(async () => {
      await gw?.close();
      await Promise.all(replicas.map((r) => r.kill()));
      dir.remove();
      if (transport === 'stdio')
        assert.deepEqual(await waitForNoChildren(), [], 'stdio upstreams left running');
    });

    test('requests that start the move or arrive during it run once, on the new replica, and succeed', async () => {
      const client = await clientOn(gw, 'd1', `arrive-${transport}`);
      try {
        await setDraining(gw, 'd1', true);
        // The first request finds its replica draining and starts the move; the others arrive during it.
        const answers = await Promise.all([
          count(client, 'a-unsafe-1'),
          count(client, 'a-safe-1', { tool: 'count_idempotent' }),
          count(client, 'a-unsafe-2'),
          count(client, 'a-safe-2', { tool: 'count_idempotent' }),
        ]);
        assert.deepEqual(answers, ['d2 a-unsafe-1', 'd2 a-safe-1', 'd2 a-unsafe-2', 'd2 a-safe-2']);
        const counts = keyCounts(replicas);
        for (const key of ['a-unsafe-1', 'a-safe-1', 'a-unsafe-2', 'a-safe-2'])
          assert.equal(counts.get(key), 1, `${key} reached the replicas ${counts.get(key) ?? 0} times`);
        // No request reached one upstream process twice under one id.
        for (const r of replicas) {
          const seen = new Set<string>();
          for (const rec of r.records()) {
            if (rec.id === undefined || rec.method === undefined) continue;
            const k = `${rec.pid}/${String(rec.id)}`;
            assert.ok(!seen.has(k), `${r.name} got request ${k} (${rec.method}) twice`);
            seen.add(k);
          }
        }
      } finally {
        await setDraining(gw, 'd1', false);
        await client.close();
      }
    });

    test('a 4 s call on a replica drained at 1 s is answered; a ping meanwhile goes to the new replica', async () => {
      const client = await clientOn(gw, 'd1', `long-${transport}`);
      try {
        const pingsBefore = replicas[1].records().filter((r) => r.method === 'ping').length;
        const started = Date.now();
        const long = count(client, 'long-1', { ms: 4000 });
        await sleep(1000);
        await setDraining(gw, 'd1', true);
        await client.ping();
        const pingAt = Date.now() - started;
        assert.ok(pingAt < 3500, `the ping waited for the long call (${pingAt} ms)`);
        assert.equal(
          replicas[1].records().filter((r) => r.method === 'ping').length,
          pingsBefore + 1,
          'the ping reached the new replica',
        );
        assert.equal(await long, 'd1 long-1', 'the call in flight was answered by the drained replica');
        assert.equal(await count(client, 'long-after'), 'd2 long-after');
        assert.equal(keyCounts(replicas).get('long-1'), 1);
        if (transport === 'stdio') {
          // Its own upstream process served the long call: released (ended) once it was answered.
          const pid = replicas[0].records().find((r) => r.key === 'long-1')!.pid;
          const deadline = Date.now() + 5000;
          while (childPids().includes(pid) && Date.now() < deadline) await sleep(50);
          assert.ok(!childPids().includes(pid), "the drained replica's process was released");
        }
      } finally {
        await setDraining(gw, 'd1', false);
        await client.close();
      }
    });

    test('a breaker opened (S3 force_circuit_state) during a call is not a failure either', async () => {
      const client = await clientOn(gw, 'd1', `breaker-${transport}`);
      const s3 = (state: string) =>
        gw.gateway.app
          .get(EventEmitter2)
          .emit(VsmChannel.S3Control, { type: 'force_circuit_state', transport: 'd1', state });
      try {
        const long = count(client, 'breaker-long', { ms: 1500 });
        await sleep(300);
        s3('open');
        assert.equal(await count(client, 'breaker-next'), 'd2 breaker-next');
        assert.equal(await long, 'd1 breaker-long', 'answered by the replica whose breaker opened');
        assert.equal(keyCounts(replicas).get('breaker-long'), 1);
      } finally {
        s3('auto');
        await client.close();
      }
    });
  });
}

describe('defect 5: a call still out when the drain grace passes', () => {
  const dir = recordDir();
  let replicas: CountingReplica[] = [];
  let gw: RunningGateway;

  before(async () => {
    replicas = await Promise.all(['g1', 'g2'].map((n) => CountingReplica.create(n, 'stdio', dir.path)));
    gw = await gatewayOver(replicas, { REPLICA_DRAIN_GRACE_MS: '500' });
  });

  after(async () => {
    await gw?.close();
    dir.remove();
    assert.deepEqual(await waitForNoChildren(), [], 'stdio upstreams left running');
  });

  test('gets −31001 saying the drained replica did not answer in time; the session goes on', async () => {
    const client = await clientOn(gw, 'g1', 'grace');
    try {
      const long = count(client, 'grace-long', { ms: 5000 });
      await sleep(300);
      await setDraining(gw, 'g1', true);
      assert.equal(await count(client, 'grace-next'), 'g2 grace-next');
      const answer = await long;
      assert.ok(answer instanceof McpError, `got ${String(answer)}`);
      assert.equal(answer.code, ErrorCode.UpstreamUnavailable);
      assert.match(answer.message, new RegExp(DRAIN_GRACE_MESSAGE.slice(0, 40)));
      assert.equal(keyCounts(replicas).get('grace-long'), 1, 'not repeated elsewhere');
    } finally {
      await client.close();
    }
  });
});

describe('pooled mode: a replica that dies (SIGKILL) under two Streamable HTTP replicas', () => {
  const dir = recordDir();
  let replicas: CountingReplica[] = [];
  let gw: RunningGateway;

  before(async () => {
    replicas = await Promise.all(
      ['p1', 'p2'].map((n) => CountingReplica.create(n, 'streamable-http', dir.path)),
    );
    gw = await gatewayOver(replicas, {}, { mode: 'pooled', pool: { min: 0, max: 2 } });
  });

  after(async () => {
    await gw?.close();
    await Promise.all(replicas.map((r) => r.kill()));
    dir.remove();
  });

  test('calls that never reached the dead replica go to the other; every call succeeds, each ran once', async () => {
    const clients = await Promise.all(Array.from({ length: 6 }, (_, i) => connect(gw, `pooled-${i}`)));
    const servedBy = await Promise.all(
      clients.map(async (c, i) => {
        const answer = await count(c, `p-before-${i}`);
        assert.equal(typeof answer, 'string', String(answer));
        return (answer as string).split(' ')[0];
      }),
    );
    const victim = replicas.find((r) => servedBy.includes(r.name))!;
    const survivor = replicas.find((r) => r !== victim)!;
    await victim.kill();
    const victimKeys = victim.keys().length;
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(clients.map((c, i) => count(c, `p-after-${round}-${i}`)));
      answers.forEach((a, i) =>
        assert.equal(
          a,
          `${survivor.name} p-after-${round}-${i}`,
          `round ${round}, session ${i}: ${String(a)}`,
        ),
      );
    }
    // New sessions start, whichever replica their key prefers.
    const late = await Promise.all(Array.from({ length: 4 }, (_, i) => connect(gw, `pooled-late-${i}`)));
    const lateAnswers = await Promise.all(late.map((c, i) => count(c, `p-late-${i}`)));
    lateAnswers.forEach((a, i) => assert.equal(a, `${survivor.name} p-late-${i}`));
    assert.equal(victim.keys().length, victimKeys, 'nothing reached the dead replica');
    for (const [key, n] of keyCounts(replicas)) assert.equal(n, 1, `${key} ran ${n} times`);
    await Promise.all([...clients, ...late].map((c) => c.close()));
  });
});
