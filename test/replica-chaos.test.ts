/**
 * Replica chaos: one service of 3 replicas of the counting upstream (test/fixtures/counting-server.ts,
 * which appends every message it receives to a file per replica) for each upstream transport
 * (Streamable HTTP, WebSocket, stdio) in each mode (dedicated, pooled) — 6 cases. In each case 6
 * official SDK clients (2 per client transport: Streamable HTTP, legacy SSE, WebSocket; distinct
 * client ids) call `count` (may have effects) and `count_idempotent` with unique keys, back to back,
 * for CHAOS_MS (5 s), while the test kills (SIGKILL), restarts, drains and un-drains replicas at random,
 * always leaving at least one replica up and not draining. Stdio replicas are commands: a kill
 * ends every process of the replica and the gateway spawns them again (so "restart" is the
 * gateway's). About 70–95 cuts and 1,500–2,300 calls in all (both printed); ≈ 60–80 s.
 *
 * Invariants, counted at the upstreams:
 * - a `count` call runs at most once (its key reaches the replicas at most once);
 * - no upstream session receives a request id twice (nothing is sent twice under one id);
 * - a `count_idempotent` key reaches the replicas more than once only when a kill happened while
 *   the call was out (it was in flight on a replica that died and was sent again);
 * - every call succeeded, or got −31001 while a kill happened during it: in dedicated mode only a
 *   `count` call, with the documented NOT_RETRIED_MESSAGE (an idempotent one is sent again);
 *   in pooled mode a call carried by a shared session that died gets −31001 "Upstream unavailable";
 * - no session is left failing after a move: once every replica is back and un-drained, every
 *   client's calls of both kinds succeed.
 *
 * Seeded: the seed is printed; REPLICA_CHAOS_SEED=<seed> replays a run's schedule (the timing of
 * the calls still varies with the machine).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCode } from '../libs/protocol/src';
import { NOT_RETRIED_MESSAGE } from '../src/pool/dedicated-port';
import { CLIENT_TRANSPORTS, endpointFor, type ClientTransportName } from './helpers/clients';
import { CountingReplica, recordDir, type CountingTransport } from './helpers/counting-replicas';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { seededRandom, testSeed } from './helpers/seed';

const TOKEN = 'replica-chaos-admin-token';
const CHAOS_MS = 5000;
const CLIENTS_PER_TRANSPORT = 2;
const UPSTREAMS: CountingTransport[] = ['streamable-http', 'ws', 'stdio'];
const MODES = ['dedicated', 'pooled'] as const;

const seed = testSeed('REPLICA_CHAOS_SEED');
console.log(`replica chaos: seed=${seed} (replay with REPLICA_CHAOS_SEED=${seed})`);

interface Call {
  client: number;
  key: string;
  tool: 'count' | 'count_idempotent';
  start: number;
  end: number;
  answer: string | undefined;
  error: McpError | undefined;
}

async function connect(gw: RunningGateway, transport: ClientTransportName, clientId: string) {
  const client = new Client({ name: 'replica-chaos', version: '1.0.0' });
  const url = endpointFor(gw.url, transport);
  url.searchParams.set('client_id', clientId);
  const t =
    transport === 'ws'
      ? new WebSocketClientTransport(url)
      : transport === 'sse'
        ? new SSEClientTransport(url)
        : new StreamableHTTPClientTransport(url);
  await client.connect(t);
  // Teaches the gateway the tools' annotations (count_idempotent is idempotentHint): replay safety.
  await client.listTools();
  return client;
}

async function call(
  client: Client,
  index: number,
  key: string,
  tool: Call['tool'],
  ms: number,
): Promise<Call> {
  const c: Call = {
    client: index,
    key,
    tool,
    start: Date.now(),
    end: 0,
    answer: undefined,
    error: undefined,
  };
  try {
    const result = await client.callTool({ name: tool, arguments: { key, ms } }, undefined, {
      timeout: 20_000,
    });
    c.answer = (result as { content: Array<{ text: string }> }).content[0].text;
  } catch (err) {
    if (!(err instanceof McpError)) throw err;
    c.error = err;
  }
  c.end = Date.now();
  return c;
}

async function setDraining(gw: RunningGateway, replica: string, draining: boolean): Promise<void> {
  const res = await fetch(`${gw.url}/admin/services/chaos/replicas/${replica}`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ draining }),
  });
  assert.equal(res.status, 200, await res.text());
}

let totalCuts = 0;
let totalCalls = 0;

describe('replica chaos: kills, restarts, drains and un-drains under SDK clients', () => {
  after(() => console.log(`replica chaos: ${totalCuts} cuts, ${totalCalls} calls in 6 cases (seed ${seed})`));

  let caseIndex = 0;
  for (const mode of MODES) {
    for (const upstream of UPSTREAMS) {
      const caseSeed = (seed + ++caseIndex * 7919) | 0;
      // One sequence for the chaos schedule, one for the calls (tools, durations).
      const random = seededRandom(caseSeed);
      const callRandom = seededRandom(caseSeed ^ 0x5bd1e995);
      test(
        `${mode} over ${upstream}: counted at the upstreams, nothing runs twice`,
        { timeout: 60_000 },
        async () => {
          const dir = recordDir();
          const replicas = await Promise.all(
            ['c1', 'c2', 'c3'].map((n) =>
              CountingReplica.create(`${upstream.slice(0, 2)}-${mode[0]}-${n}`, upstream, dir.path),
            ),
          );
          const gw = await startGateway(
            {
              upstream: { retryMinMs: 20, retryMaxMs: 100, maxRestarts: 20, connectTimeoutMs: 3000 },
              defaultService: 'chaos',
              services: {
                chaos: {
                  mode,
                  ...(mode === 'pooled' ? { pool: { min: 0, max: 2, acquireTimeoutMs: 10_000 } } : {}),
                  breaker: {
                    volumeThreshold: 3,
                    errorThresholdPercentage: 50,
                    resetTimeoutMs: 500,
                    rollingWindowMs: 2000,
                  },
                  replicas: replicas.map((r) => r.config()),
                },
              },
            },
            { ADMIN_TOKEN: TOKEN },
          );
          const kills: number[] = [];
          const draining = new Set<string>();
          let cuts = 0;
          const clients: Client[] = [];
          try {
            for (const transport of CLIENT_TRANSPORTS) {
              for (let i = 0; i < CLIENTS_PER_TRANSPORT; i++) {
                clients.push(await connect(gw, transport, `chaos-${mode}-${upstream}-${transport}-${i}`));
              }
            }
            const calls: Call[] = [];
            let running = true;
            const loops = clients.map(async (client, index) => {
              for (let n = 0; running; n++) {
                const tool = callRandom() < 0.5 ? 'count' : 'count_idempotent';
                calls.push(
                  await call(client, index, `k-${index}-${n}`, tool, Math.floor(callRandom() * 120)),
                );
              }
            });

            // The chaos: a random action every 150–450 ms (kill, restart, drain, un-drain), always
            // leaving one replica up and active.
            const deadline = Date.now() + CHAOS_MS;
            while (Date.now() < deadline) {
              await sleep(150 + random() * 300);
              const serving = replicas.filter((r) => r.up && !draining.has(r.name));
              // One of the actions possible now, never leaving no replica up and active.
              const actions: Array<() => Promise<void>> = [];
              for (const r of replicas) {
                const last = serving.length === 1 && serving[0] === r;
                if (!r.up) actions.push(() => r.start());
                else if (!last)
                  actions.push(async () => {
                    kills.push(Date.now());
                    await r.kill();
                  });
                if (draining.has(r.name))
                  actions.push(async () => {
                    draining.delete(r.name);
                    await setDraining(gw, r.name, false);
                  });
                else if (!last)
                  actions.push(async () => {
                    draining.add(r.name);
                    await setDraining(gw, r.name, true);
                  });
              }
              await actions[Math.floor(random() * actions.length)]();
              cuts++;
            }
            running = false;
            await Promise.all(loops);

            // Everything back: no session is left failing.
            for (const r of replicas) await r.start();
            for (const name of draining) await setDraining(gw, name, false);
            draining.clear();
            const finals = await Promise.all(
              clients.flatMap((client, index) => [
                call(client, index, `final-${index}-a`, 'count', 0),
                call(client, index, `final-${index}-b`, 'count_idempotent', 0),
              ]),
            );
            for (const f of finals) {
              assert.equal(
                f.error,
                undefined,
                `client ${f.client} still failing after the chaos: ${f.error?.message}`,
              );
            }
            calls.push(...finals);

            // ---- invariants, counted at the upstreams
            const received = new Map<string, number>();
            const ids = new Set<string>();
            for (const r of replicas) {
              for (const rec of r.records()) {
                if (rec.key !== undefined) received.set(rec.key, (received.get(rec.key) ?? 0) + 1);
                if (rec.id === undefined || rec.method === undefined) continue;
                // An initialize over HTTP opens its session: its id is only unique per session.
                if (rec.session === undefined && upstream === 'streamable-http') continue;
                const where = `${r.name}/${rec.pid}/${rec.session ?? ''}/${JSON.stringify(rec.id)}`;
                assert.ok(!ids.has(where), `request ${where} (${rec.method}) was sent twice under one id`);
                ids.add(where);
              }
            }
            // A kill up to 1 s before the call started counts: the gateway may write to a process or
            // socket that is dead before it hears of the death.
            const killedDuring = (c: Call) => kills.some((t) => t >= c.start - 1000 && t <= c.end);
            let succeeded = 0;
            let refused = 0;
            for (const c of calls) {
              const n = received.get(c.key) ?? 0;
              if (c.tool === 'count') assert.ok(n <= 1, `${c.key} (may have effects) ran ${n} times`);
              else if (n > 1)
                assert.ok(killedDuring(c), `${c.key} (idempotent) ran ${n} times with no kill meanwhile`);
              if (c.error === undefined) {
                succeeded++;
                assert.match(c.answer!, new RegExp(` ${c.key}$`));
                assert.ok(n >= 1, `${c.key} succeeded but no replica received it`);
                continue;
              }
              refused++;
              const what = `${c.tool} ${c.key}: ${c.error.code} ${c.error.message}`;
              assert.equal(c.error.code, ErrorCode.UpstreamUnavailable, what);
              assert.ok(killedDuring(c), `${what} — no replica died while it was out`);
              if (mode === 'dedicated') {
                assert.equal(c.tool, 'count', `${what} — an idempotent call is sent again`);
                assert.ok(c.error.message.includes(NOT_RETRIED_MESSAGE), what);
              }
            }
            totalCuts += cuts;
            totalCalls += calls.length;
            console.log(
              `replica chaos ${mode}/${upstream}: ${cuts} cuts (${kills.length} kills), ${calls.length} calls, ` +
                `${succeeded} answered, ${refused} refused as in flight on a replica that died`,
            );
            assert.ok(cuts >= 4, `only ${cuts} cuts`);
            assert.ok(succeeded > calls.length / 2, `only ${succeeded} of ${calls.length} calls succeeded`);
          } finally {
            await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
            await gw.close();
            await Promise.all(replicas.map((r) => r.kill()));
            dir.remove();
          }
        },
      );
    }
  }
});
