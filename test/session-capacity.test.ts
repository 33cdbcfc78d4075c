/**
 * The descriptor guard in dedicated mode: with a descriptor limit lowered by configuration (the
 * test process's own RLIMIT_NOFILE cannot be lowered safely), each new session over a stdio
 * server-everything costs a child's pipes, until the gateway refuses a new one with 503 and
 * Retry-After on every client transport, before the limit is reached; the sessions it holds keep
 * answering, and once some end new ones are admitted again.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { everythingStdioReplica } from './helpers/everything';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { childPids, waitForNoChildren } from './helpers/leaks';
import { BOTH, raw, sessionHeaders, type RawResponse } from './helpers/streamable-http-client';

const VERSION = '2025-11-25';
const openDescriptors = () => readdirSync('/proc/self/fd').length;

function initialize(base: string): Promise<RawResponse> {
  return raw(base, {
    headers: { 'content-type': 'application/json', accept: BOTH },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'fd-test', version: '1' } },
    }),
  });
}

let nextId = 1;
async function echo(base: string, sessionId: string, message: string): Promise<string> {
  // A fresh id each time: a repeated id on a session is answered from its de-duplication window.
  const body = {
    jsonrpc: '2.0',
    id: nextId++,
    method: 'tools/call',
    params: { name: 'echo', arguments: { message } },
  };
  const res = await raw(base, { headers: sessionHeaders(sessionId, VERSION), body: JSON.stringify(body) });
  assert.equal(res.status, 200, res.text);
  const line = res.text.trim().startsWith('{')
    ? res.text
    : res.text
        .split('\n')
        .filter((l) => l.startsWith('data:') && l.includes('"result"'))
        .map((l) => l.slice(5))[0];
  return JSON.parse(line).result.content[0].text;
}

function assertRefused(status: number, retryAfter: string | string[] | null | undefined, what: string) {
  assert.equal(status, 503, `${what}: 503`);
  assert.ok(Number(retryAfter) >= 1, `${what}: Retry-After (${String(retryAfter)})`);
}

describe('session capacity guard (dedicated stdio, lowered descriptor limit)', () => {
  let gw: RunningGateway;
  let baseline: number[];
  let limit: number;
  const sessions: string[] = [];

  before(async () => {
    baseline = childPids();
    // Room for the gateway itself and about a dozen dedicated sessions (3 pipes each) above what is open now.
    limit = openDescriptors() + 70;
    gw = await startGateway({
      defaultService: 'everything',
      services: { everything: { mode: 'dedicated', replicas: [everythingStdioReplica()] } },
      session: { fdLimit: limit, fdHeadroomPercent: 10 },
    });
  });

  after(async () => {
    await gw?.close();
    assert.deepEqual(await waitForNoChildren(baseline, 10_000), [], 'no child left');
  });

  test('new sessions are refused with 503 + Retry-After before the limit; held sessions keep working', async () => {
    let refused: RawResponse | undefined;
    for (let i = 0; i < 40 && !refused; i++) {
      const res = await initialize(gw.url);
      if (res.status === 503) {
        refused = res;
        break;
      }
      assert.equal(res.status, 200, res.text);
      const id = res.headers['mcp-session-id'] as string;
      sessions.push(id);
      // Its child is up once it answers: the descriptors it costs are open now.
      assert.match(await echo(gw.url, id, `s${i}`), new RegExp(`s${i}$`));
    }
    assert.ok(refused, `refused within 40 sessions (admitted ${sessions.length})`);
    assert.ok(sessions.length >= 3, `some sessions fitted first (${sessions.length})`);
    assertRefused(refused.status, refused.headers['retry-after'], 'Streamable HTTP initialize');
    assert.equal(refused.json?.error?.code, -31003);
    assert.equal(typeof refused.json.error.data?.retryAfterMs, 'number');
    assert.match(refused.json.error.message, /capacity/);
    const open = openDescriptors();
    assert.ok(open < limit, `refused before running out: ${open} open of ${limit}`);

    // The other client transports are refused the same way, before any session exists.
    const sse = await fetch(`${gw.url}/sse`, {
      headers: { accept: 'text/event-stream' },
      signal: AbortSignal.timeout(10_000),
    });
    await sse.body?.cancel();
    assertRefused(sse.status, sse.headers.get('retry-after'), 'legacy SSE');
    const upgrade = await new Promise<{ status: number; retryAfter: string | undefined }>(
      (resolve, reject) => {
        const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/ws`, 'mcp');
        ws.on('unexpected-response', (_req, res) => {
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers['retry-after'] as string | undefined,
          });
          res.resume();
          ws.terminate();
        });
        ws.on('open', () => {
          ws.close();
          reject(new Error('the upgrade was accepted'));
        });
        ws.on('error', () => undefined);
      },
    );
    assertRefused(upgrade.status, upgrade.retryAfter, 'WebSocket upgrade');

    // Every session held keeps answering.
    for (const [i, id] of sessions.entries())
      assert.match(await echo(gw.url, id, `again${i}`), new RegExp(`again${i}$`));
  });

  test('once sessions end and their descriptors are closed, new sessions are admitted again', async () => {
    const ending = sessions.splice(0, Math.ceil(sessions.length / 2));
    for (const id of ending) {
      const res = await raw(gw.url, { method: 'DELETE', headers: sessionHeaders(id, VERSION) });
      assert.ok(res.status === 200 || res.status === 204, `DELETE → ${res.status}`);
    }
    // Poll with a bound: the children exit asynchronously, and the guard counts every 250 ms.
    const deadline = Date.now() + 15_000;
    let res = await initialize(gw.url);
    while (res.status === 503 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      res = await initialize(gw.url);
    }
    assert.equal(res.status, 200, res.text);
    assert.ok(res.headers['mcp-session-id'], 'a new session');
  });
});
