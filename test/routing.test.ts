import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startEverythingHttp, type RunningEverything } from './helpers/everything';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { raw, sessionHeaders, BOTH } from './helpers/streamable-http-client';

/**
 * Routing through the real app: three server-everything replicas over Streamable HTTP, declared in
 * a watched gateway.yaml, observed and changed through the admin API as an operator would.
 */

const VERSION = '2025-11-25';
const TOKEN = 'routing-test-admin-token-0123456789';
const SERVICE = 'everything';

interface ReplicaView {
  id: string;
  weight: number;
  state: string;
  sessions: number;
}

const replicas: RunningEverything[] = [];
let gw: RunningGateway;
let dir: string;
let file: string;

function yamlFor(entries: Array<{ id: string; url: string; weight: number; draining?: boolean }>): string {
  const lines = [`defaultService: ${SERVICE}`, 'services:', `  ${SERVICE}:`, '    replicas:'];
  for (const e of entries) {
    lines.push(`      - id: ${e.id}`, '        transport: streamable-http', `        url: ${e.url}`);
    lines.push(`        weight: ${e.weight}`);
    if (e.draining) lines.push('        draining: true');
  }
  return `${lines.join('\n')}\n`;
}

/** Writes as editors do: a new file renamed over the old one (the watch must survive it). */
function writeConfig(text: string): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

function baseEntries(): Array<{ id: string; url: string; weight: number; draining?: boolean }> {
  return [
    { id: 'r1', url: replicas[0].url, weight: 1 },
    { id: 'r2', url: replicas[1].url, weight: 1 },
    { id: 'r3', url: replicas[2].url, weight: 2 },
  ];
}

async function admin(method: string, path: string, body?: unknown, token: string | null = TOKEN) {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${gw.url}/admin${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
}

async function replicaViews(): Promise<Map<string, ReplicaView>> {
  const res = await admin('GET', '/services');
  assert.equal(res.status, 200);
  const service = res.json.services.find((s: { name: string }) => s.name === SERVICE);
  return new Map(service.replicas.map((r: ReplicaView) => [r.id, r]));
}

async function sessionsPerReplica(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [id, r] of await replicaViews()) out[id] = r.sessions;
  return out;
}

/** initialize with a client id: the lightest request that places a session on a replica. */
async function openSession(clientId: string): Promise<string> {
  const res = await raw(gw.url, {
    headers: { 'content-type': 'application/json', accept: BOTH, 'x-mcp-client-id': clientId },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: VERSION,
        capabilities: {},
        clientInfo: { name: 'routing-test', version: '1' },
      },
    }),
  });
  assert.equal(res.status, 200, res.text);
  return res.headers['mcp-session-id'] as string;
}

async function closeSession(sessionId: string, clientId: string): Promise<void> {
  const res = await raw(gw.url, {
    method: 'DELETE',
    headers: { ...sessionHeaders(sessionId, VERSION), 'x-mcp-client-id': clientId },
  });
  assert.ok(res.status === 200 || res.status === 204, `DELETE: ${res.status}`);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function allClosed(): Promise<void> {
  await waitFor('every session released', async () => {
    const counts = await sessionsPerReplica();
    return Object.values(counts).every((n) => n === 0) ? true : undefined;
  });
}

/**
 * Opens `count` sessions with distinct client ids in batches (at most `batch` open at once, so
 * server-everything is not asked to hold hundreds of sessions), reads from the admin API which
 * replica each batch landed on, closes the batch. Returns the sessions counted per replica.
 */
async function spread(prefix: string, count: number, batch = 40): Promise<Record<string, number>> {
  const total: Record<string, number> = {};
  for (let start = 0; start < count; start += batch) {
    const ids = Array.from({ length: Math.min(batch, count - start) }, (_, i) => `${prefix}-${start + i}`);
    const sessions = await Promise.all(ids.map((id) => openSession(id)));
    const counts = await sessionsPerReplica();
    assert.equal(
      Object.values(counts).reduce((a, b) => a + b, 0),
      ids.length,
      `every open session is counted once (${JSON.stringify(counts)})`,
    );
    for (const [id, n] of Object.entries(counts)) total[id] = (total[id] ?? 0) + n;
    await Promise.all(sessions.map((s, i) => closeSession(s, ids[i])));
    await allClosed();
  }
  return total;
}

describe('routing over three weighted replicas', () => {
  before(async () => {
    // One after the other (three cold starts at once can overrun the helper's start deadline on a
    // busy machine), each recorded at once so `after` stops whatever did start.
    for (let i = 0; i < 3; i++) replicas.push(await startEverythingHttp('streamableHttp'));
    dir = mkdtempSync(join(tmpdir(), 'gateway-routing-'));
    file = join(dir, 'gateway.yaml');
    writeFileSync(file, yamlFor(baseEntries()));
    gw = await startGateway({}, { GATEWAY_CONFIG: file, GATEWAY_CONFIG_POLL_MS: '100', ADMIN_TOKEN: TOKEN });
  });

  after(async () => {
    await gw?.close();
    await Promise.all(replicas.map((r) => r.stop()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('400 sessions with distinct client ids spread in proportion to the weights 1, 1, 2', async (t) => {
    const n = 400;
    const counts = await spread('client', n);
    t.diagnostic(`sessions per replica: ${JSON.stringify(counts)}`);
    // Expected share p = w/W: 1/4, 1/4, 1/2. Two independent sources of spread:
    //  - the ring: a replica of weight w owns 160·w virtual nodes, so its key share deviates from p
    //    by a relative standard deviation of about sqrt((1 − p) / (160·w)) (hash-ring docs):
    //    6.8 % of 1/4 for weight 1 (σ = 0.017), 4 % of 1/2 for weight 2 (σ = 0.020);
    //  - sampling 400 keys: binomial σ = sqrt(p(1 − p)/n) = 0.0217 (p = 1/4), 0.025 (p = 1/2).
    // Combined σ of a share: 0.0275 (weight 1), 0.032 (weight 2), i.e. 11 and 12.8 sessions. We
    // allow 4σ (a chance failure of about 6e-5 per replica for a random ring): ±44 and ±51. Equal
    // shares (133 each) would fail the weight-2 bound, so the test tells weighting from none.
    const expected: Record<string, [number, number]> = { r1: [100, 44], r2: [100, 44], r3: [200, 51] };
    assert.equal(counts.r1 + counts.r2 + counts.r3, n);
    for (const [id, [mean, tolerance]] of Object.entries(expected)) {
      assert.ok(
        Math.abs(counts[id] - mean) <= tolerance,
        `${id}: ${counts[id]} sessions, expected ${mean} ± ${tolerance} (${JSON.stringify(counts)})`,
      );
    }
  });

  test('the same client id lands on the same replica every time (client_id is the default key)', async () => {
    const first = await spread('sticky', 1);
    const again = await spread('sticky', 1);
    assert.deepEqual(again, first);
  });

  test('admin API: refuses without a token or with a wrong one', async () => {
    const none = await admin('GET', '/services', undefined, null);
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
    const wrong = await admin('GET', '/services', undefined, 'not-the-token-at-all');
    assert.equal(wrong.status, 401);
    const ok = await admin('GET', '/services');
    assert.equal(ok.status, 200);
    assert.equal(ok.json.defaultService, SERVICE);
    assert.deepEqual(
      ok.json.services[0].replicas.map((r: ReplicaView) => [r.id, r.weight, r.state]),
      [
        ['r1', 1, 'active'],
        ['r2', 1, 'active'],
        ['r3', 2, 'active'],
      ],
    );
  });

  test('admin API: add, drain, reweight and remove a replica live, with effect on new sessions', async () => {
    // Add a fourth replica (a second entry for replica 1's server, under its own id).
    const added = await admin('POST', `/services/${SERVICE}/replicas`, {
      id: 'r4',
      transport: 'streamable-http',
      url: replicas[0].url,
      weight: 2,
    });
    assert.equal(added.status, 201, JSON.stringify(added.json));
    assert.equal(added.json.id, 'r4');
    const dup = await admin('POST', `/services/${SERVICE}/replicas`, {
      id: 'r4',
      transport: 'streamable-http',
      url: replicas[1].url,
    });
    assert.equal(dup.status, 409);
    const bad = await admin('POST', `/services/${SERVICE}/replicas`, {
      transport: 'streamable-http',
      weight: 0,
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.problems.length, 2, JSON.stringify(bad.json)); // url missing, weight too small
    let counts = await spread('after-add', 60);
    assert.ok(counts.r4 > 0, `the new replica takes sessions: ${JSON.stringify(counts)}`);

    // Drain r3: an open session on it keeps working, moved to another replica at its next request;
    // new sessions never land on it.
    const onR3 = await findClientOn('r3', 'drain-probe');
    const held = await openSession(onR3);
    assert.equal((await admin('PATCH', `/services/${SERVICE}/replicas/r3`, { draining: true })).status, 200);
    assert.equal((await replicaViews()).get('r3')!.state, 'draining');
    const ping = await raw(gw.url, {
      headers: { ...sessionHeaders(held, VERSION), 'x-mcp-client-id': onR3 },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'ping' }),
    });
    assert.equal(ping.status, 200);
    assert.match(ping.text, /"id":7,"result":\{\}|"result":\{\},"jsonrpc":"2.0","id":7/);
    const placed = await sessionsPerReplica();
    assert.equal(placed.r3 ?? 0, 0, 'the open session left the drained replica at its next request');
    assert.equal(
      Object.values(placed).reduce((a, b) => a + b, 0),
      1,
      `it lives on another replica: ${JSON.stringify(placed)}`,
    );
    await closeSession(held, onR3);
    counts = await spread('drained', 60);
    assert.equal(counts.r3 ?? 0, 0, `no new session on a draining replica: ${JSON.stringify(counts)}`);
    assert.equal((await admin('PATCH', `/services/${SERVICE}/replicas/r3`, { draining: false })).status, 200);

    // Reweight r1 from 1 to 20: its share of new sessions goes from about 1/6 to about 20/25.
    const reweighted = await admin('PATCH', `/services/${SERVICE}/replicas/r1`, { weight: 20 });
    assert.equal(reweighted.status, 200);
    assert.equal(reweighted.json.weight, 20);
    counts = await spread('reweighted', 60);
    assert.ok(counts.r1 > 30, `r1 takes most new sessions after its reweight: ${JSON.stringify(counts)}`);
    assert.equal((await admin('PATCH', `/services/${SERVICE}/replicas/r1`, { weight: 1 })).status, 200);

    // Remove r4: gone from the view, no new session reaches it.
    assert.equal((await admin('DELETE', `/services/${SERVICE}/replicas/r4`)).status, 204);
    assert.equal((await admin('DELETE', `/services/${SERVICE}/replicas/r4`)).status, 404);
    assert.deepEqual([...(await replicaViews()).keys()], ['r1', 'r2', 'r3']);
    counts = await spread('removed', 40);
    assert.equal(counts.r4, undefined);
    assert.equal((await admin('PATCH', `/services/nope/replicas/r1`, { weight: 2 })).status, 404);
  });

  test('gateway.yaml edits apply live; a bad edit is refused with every problem and the old config stays', async () => {
    // Good edit: r2 drained, r3 reweighted to 5, a new replica r5 on replica 2's server.
    const entries = baseEntries();
    entries[1].draining = true;
    entries[2].weight = 5;
    writeConfig(yamlFor([...entries, { id: 'r5', url: replicas[1].url, weight: 1 }]));
    const views = await waitFor('the edit applied', async () => {
      const v = await replicaViews();
      return v.has('r5') ? v : undefined;
    });
    assert.deepEqual(
      [...views.values()].map((r) => [r.id, r.weight, r.state]),
      [
        ['r1', 1, 'active'],
        ['r2', 1, 'draining'],
        ['r3', 5, 'active'],
        ['r5', 1, 'active'],
      ],
    );
    const counts = await spread('edited', 40);
    assert.equal(
      counts.r2,
      0,
      `a replica drained in the file takes no new session: ${JSON.stringify(counts)}`,
    );

    // Bad edit with three problems: every one is reported, nothing changes.
    writeConfig(
      [
        `defaultService: ${SERVICE}`,
        'services:',
        `  ${SERVICE}:`,
        '    routing: { key: header }',
        '    replicas:',
        '      - id: r1',
        '        transport: streamable-http',
        '        url: ftp://nowhere',
        '        weight: 0',
        '',
      ].join('\n'),
    );
    const refused = await waitFor('the edit refused', async () => {
      const status = (await admin('GET', '/config')).json;
      return status.refused ? status.refused : undefined;
    });
    assert.equal(refused.problems.length, 3, JSON.stringify(refused.problems));
    assert.ok(refused.problems.some((p: string) => /routing\.header/.test(p)));
    assert.ok(refused.problems.some((p: string) => /replicas\.0\.url/.test(p)));
    assert.ok(refused.problems.some((p: string) => /replicas\.0\.weight/.test(p)));
    assert.deepEqual(
      [...(await replicaViews()).values()].map((r) => [r.id, r.weight, r.state]),
      [...views.values()].map((r) => [r.id, r.weight, r.state]),
      'the last good configuration stays',
    );
    const still = await spread('after-bad-edit', 20);
    assert.equal(still.r2, 0);

    // Fixed again: the next good edit applies and clears the refusal.
    writeConfig(yamlFor(baseEntries()));
    await waitFor('the fix applied', async () => {
      const v = await replicaViews();
      return !v.has('r5') && v.get('r2')!.state === 'active' ? true : undefined;
    });
    assert.equal((await admin('GET', '/config')).json.refused, undefined);
  });

  test('routing key "header": one tenant’s sessions share a replica, whatever the client and transport', async () => {
    const text = yamlFor(baseEntries()).replace(
      '    replicas:',
      '    routing: { key: header, header: X-Tenant }\n    replicas:',
    );
    writeConfig(text);
    await waitFor('the routing change applied', async () => {
      const res = await admin('GET', '/services');
      return res.json.services[0].routing.key === 'header' ? true : undefined;
    });
    const before = await sessionsPerReplica();
    const tenant = 'acme';
    const opened: string[] = [];
    for (let i = 0; i < 6; i++) {
      const clientId = `tenant-client-${i}`;
      const res = await raw(gw.url, {
        headers: {
          'content-type': 'application/json',
          accept: BOTH,
          'x-mcp-client-id': clientId,
          'x-tenant': tenant,
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 0,
          method: 'initialize',
          params: {
            protocolVersion: VERSION,
            capabilities: {},
            clientInfo: { name: 'routing-test', version: '1' },
          },
        }),
      });
      assert.equal(res.status, 200);
      opened.push(res.headers['mcp-session-id'] as string);
    }
    // Legacy SSE and WebSocket create their session on the GET / the upgrade, with its headers.
    const sse = new AbortController();
    const stream = await fetch(`${gw.url}/sse`, {
      headers: { accept: 'text/event-stream', 'x-mcp-client-id': 'tenant-sse', 'x-tenant': tenant },
      signal: sse.signal,
    });
    assert.equal(stream.status, 200);
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/ws`, 'mcp', {
      headers: { 'x-mcp-client-id': 'tenant-ws', 'x-tenant': tenant },
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const delta = await waitFor('8 sessions placed', async () => {
      const now = await sessionsPerReplica();
      const d = Object.fromEntries(Object.entries(now).map(([id, n]) => [id, n - (before[id] ?? 0)]));
      return Object.values(d).reduce((a, b) => a + b, 0) === 8 ? d : undefined;
    });
    assert.equal(
      Object.values(delta).filter((n) => n > 0).length,
      1,
      `one replica: ${JSON.stringify(delta)}`,
    );
    ws.close();
    sse.abort();
  });
});

describe('admin API on a one-replica service', () => {
  test('the last replica cannot be removed; drained, new sessions get a clear error', async () => {
    const demo = await startGateway({}, { ADMIN_TOKEN: TOKEN });
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${demo.url}/admin${path}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, json: text ? JSON.parse(text) : undefined };
    };
    try {
      const [replica] = (await call('GET', '/services')).json.services[0].replicas;
      assert.equal((await call('DELETE', `/services/demo/replicas/${replica.id}`)).status, 409);
      assert.equal(
        (await call('PATCH', `/services/demo/replicas/${replica.id}`, { draining: true })).status,
        200,
      );
      const res = await raw(demo.url, {
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 't', version: '1' } },
        }),
      });
      assert.match(res.text, /-31001/);
      assert.match(res.text, /no replica of \\"demo\\" takes new sessions/);
    } finally {
      await demo.close();
    }
  });
});

describe('admin API without a token', () => {
  test('is off: 404 for every admin path', async () => {
    const plain = await startGateway();
    try {
      for (const [method, path] of [
        ['GET', '/admin/services'],
        ['DELETE', '/admin/services/demo/replicas/x'],
      ]) {
        const res = await fetch(`${plain.url}${path}`, {
          method,
          headers: { authorization: 'Bearer anything' },
        });
        await res.body?.cancel();
        assert.equal(res.status, 404, `${method} ${path}`);
      }
    } finally {
      await plain.close();
    }
  });
});

/** A client id whose sessions the ring places on `replica` (found by trying ids, as an operator could). */
async function findClientOn(replica: string, prefix: string): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const clientId = `${prefix}-${i}`;
    const counts = await spread(clientId, 1);
    if (Object.entries(counts).find(([, n]) => n === 1)?.[0] === replica) return `${clientId}-0`;
  }
  throw new Error(`no client id found for ${replica}`);
}
