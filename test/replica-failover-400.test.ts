/**
 * The failover case at scale: three real server-everything replicas (Streamable HTTP)
 * with weights 1, 1, 2 behind one dedicated service; 400 sessions with distinct client ids
 * (raw Streamable HTTP, to keep the run short) plus one SDK client per client transport.
 * The spread follows the weights within a tolerance derived from the hash's variance; killing
 * one replica moves exactly its sessions — each to the next replica of its failover order — and
 * they keep answering under the same session id (the SDK clients see no reconnect); sessions on
 * the other replicas stay where they are.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import { Router } from '../src/routing/router.service';
import { CLIENT_TRANSPORTS, endpointFor } from './helpers/clients';
import { startEverythingHttp, type RunningEverything } from './helpers/everything';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { BOTH, call, raw, sessionHeaders } from './helpers/streamable-http-client';
import { inBatches } from './helpers/batches';

const SESSIONS = 400;
const VERSION = '2025-06-18';
const SERVICE = 'everything';

/** The JSON-RPC answer of a POST, whether it came as JSON or as an SSE stream. */
function answerOf(text: string): any {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) return JSON.parse(trimmed);
  return trimmed
    .split('\n')
    .filter((l) => l.startsWith('data:') && l.slice(5).trim() !== '')
    .map((l) => JSON.parse(l.slice(5)))
    .find((m) => m.id !== undefined && (m.result !== undefined || m.error !== undefined));
}

function portOf(url: string): string {
  return new URL(url).port;
}

interface RawSession {
  clientId: string;
  sessionId: string;
}

describe('replica failover at 400 sessions (weights 1, 1, 2)', () => {
  let replicas: RunningEverything[] = [];
  let gw: RunningGateway;

  before(async () => {
    replicas = await Promise.all([0, 1, 2].map(() => startEverythingHttp('streamableHttp')));
    gw = await startGateway({
      upstream: { retryMinMs: 20, retryMaxMs: 100, maxRestarts: 1, connectTimeoutMs: 5000 },
      defaultService: SERVICE,
      services: {
        [SERVICE]: {
          replicas: replicas.map((r, i) => ({
            transport: 'streamable-http' as const,
            url: r.url,
            weight: i === 2 ? 2 : 1,
          })),
        },
      },
    });
  });

  after(async () => {
    await gw?.close();
    await Promise.all(replicas.map((r) => r.stop()));
  });

  async function openRaw(clientId: string): Promise<RawSession> {
    const init = await raw(gw.url, {
      headers: { 'content-type': 'application/json', accept: BOTH, 'x-mcp-client-id': clientId },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'spread', version: '1' } },
      }),
    });
    assert.equal(init.status, 200, init.text);
    const sessionId = init.headers['mcp-session-id'] as string;
    const note = await raw(gw.url, {
      headers: { ...sessionHeaders(sessionId, VERSION), 'x-mcp-client-id': clientId },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    assert.equal(note.status, 202);
    return { clientId, sessionId };
  }

  /** Which replica (its PORT) serves a raw session, asked through the session itself. */
  async function rawPort(s: RawSession, id: number): Promise<string> {
    const res = await raw(gw.url, {
      headers: { ...sessionHeaders(s.sessionId, VERSION), 'x-mcp-client-id': s.clientId },
      body: JSON.stringify(call(id, 'get-env', {})),
    });
    assert.equal(res.status, 200, `${s.sessionId}: ${res.status} ${res.text}`);
    const answer = answerOf(res.text);
    assert.ok(answer?.result, `${s.clientId}: ${res.text}`);
    return (JSON.parse(answer.result.content[0].text) as { PORT: string }).PORT;
  }

  async function sdkPort(client: Client): Promise<string> {
    const result = (await client.callTool({ name: 'get-env', arguments: {} })) as {
      content: Array<{ text: string }>;
    };
    return (JSON.parse(result.content[0].text) as { PORT: string }).PORT;
  }

  test('400 sessions follow the weights; killing one replica moves only its sessions, which keep their ids', async () => {
    const router = gw.gateway.app.get(Router);
    const ids = router.replicaIds(SERVICE);
    const portById = new Map(
      ids.map((id) => [id, portOf((router.replica(SERVICE, id) as { url: string }).url)]),
    );

    const sessions = await inBatches(
      Array.from({ length: SESSIONS }, (_, i) => `client-${i}`),
      16,
      (clientId) => openRaw(clientId),
    );
    const before = await inBatches(sessions, 16, (s) => rawPort(s, 1));

    // Spread. The share of a weight-1 replica is 1/4, of the weight-2 one 1/2. Its variance has two
    // parts (see test/routing.test.ts for the derivation): the ring's own (160 virtual nodes per unit
    // of weight: σ ≈ 0.017 of the keyspace for weight 1, 0.020 for weight 2) and sampling 400 keys
    // (binomial σ = sqrt(p(1 − p)/n): 0.0217 and 0.025). Combined: 0.0275 and 0.032, i.e. 11 and 12.8
    // sessions; 4σ allows ±44 and ±51.
    const counts = new Map<string, number>();
    for (const p of before) counts.set(p, (counts.get(p) ?? 0) + 1);
    const expected = replicas.map((r, i) => ({
      port: portOf(r.url),
      mean: i === 2 ? SESSIONS / 2 : SESSIONS / 4,
      tolerance: i === 2 ? 51 : 44,
    }));
    for (const e of expected) {
      const n = counts.get(e.port) ?? 0;
      assert.ok(
        Math.abs(n - e.mean) <= e.tolerance,
        `replica :${e.port} holds ${n} sessions, expected ${e.mean} ± ${e.tolerance} (${JSON.stringify([...counts])})`,
      );
    }
    // The gateway's own count per replica agrees with what the sessions report.
    const view = router.view().find((s) => s.name === SERVICE)!;
    for (const r of view.replicas) assert.equal(r.sessions, counts.get(portById.get(r.id)!) ?? 0);

    // One SDK client per client transport whose primary is the replica that will die (a weight-1 one).
    const victimId = ids[0];
    const victimPort = portById.get(victimId)!;
    const sdk: Array<{ client: Client; transport: { sessionId?: string } }> = [];
    for (const name of CLIENT_TRANSPORTS) {
      let n = 0;
      while (router.pick(SERVICE, `sdk-${name}-${n}`)[0].id !== victimId) n++;
      const url = endpointFor(gw.url, name);
      url.searchParams.set('client_id', `sdk-${name}-${n}`);
      const transport =
        name === 'ws'
          ? new WebSocketClientTransport(url)
          : name === 'sse'
            ? new SSEClientTransport(url)
            : new StreamableHTTPClientTransport(url);
      const client = new Client({ name: 'failover-400', version: '1' });
      await client.connect(transport);
      assert.equal(await sdkPort(client), victimPort, `${name} starts on the victim`);
      sdk.push({ client, transport: transport as { sessionId?: string } });
    }
    const sdkIds = sdk.map((s) => s.transport.sessionId);

    replicas[0].child.kill('SIGKILL');
    await new Promise<void>((resolve) => {
      if (replicas[0].child.exitCode !== null || replicas[0].child.signalCode !== null) resolve();
      else replicas[0].child.once('exit', () => resolve());
    });

    // The first request of each session after the kill is a read-only one (tools/list): one that was
    // bound for the dead replica is sent again on the next one, so none of them is lost.
    const listed = await inBatches(sessions, 16, async (s) => {
      const res = await raw(gw.url, {
        headers: { ...sessionHeaders(s.sessionId, VERSION), 'x-mcp-client-id': s.clientId },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      });
      return answerOf(res.text)?.result?.tools?.length ?? -1;
    });
    assert.ok(
      listed.every((n) => n > 0),
      `tools/list answered on every session (${listed.filter((n) => n <= 0).length} not)`,
    );
    const afterKill = await inBatches(sessions, 16, (s) => rawPort(s, 3));
    let moved = 0;
    for (let i = 0; i < SESSIONS; i++) {
      if (before[i] !== victimPort) {
        assert.equal(afterKill[i], before[i], `${sessions[i].clientId} was not on the victim and stays put`);
        continue;
      }
      moved++;
      // It goes to the next replica of its own failover order.
      const order = router.pick(SERVICE, sessions[i].clientId).map((r) => r.id);
      const expectedPort = portById.get(order.find((id) => id !== victimId)!)!;
      assert.equal(afterKill[i], expectedPort, `${sessions[i].clientId} moved to its ring successor`);
    }
    assert.equal(moved, counts.get(victimPort), "every one of the victim's sessions moved");

    for (const s of sdk) {
      assert.ok((await s.client.listTools()).tools.length > 0, 'a read-only call after the kill is answered');
      assert.notEqual(await sdkPort(s.client), victimPort, 'the SDK session moved');
    }
    assert.deepEqual(
      sdk.map((s) => s.transport.sessionId),
      sdkIds,
      'the SDK clients kept their session ids',
    );
    await Promise.all(sdk.map((s) => s.client.close()));
  });
});
