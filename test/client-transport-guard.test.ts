/**
 * The guard of each client transport (Streamable HTTP, legacy SSE, WebSocket): its breaker,
 * forced through S3 `force_circuit_state` or opened by real gateway-side failures (new sessions
 * whose upstream cannot be started: a stdio command that does not exist), refuses new sessions on
 * that transport only — HTTP 503 + Retry-After + −31003, or a 503 at the WebSocket upgrade — while
 * sessions already open keep working; S3 `allocate_connections` caps the live sessions on a transport.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EventEmitter2 } from '@nestjs/event-emitter';
import WebSocket from 'ws';
import { ErrorCode } from '../libs/protocol/src';
import { ClientTransportGuardService } from '../src/session/client-transport-guard.service';
import type { ClientTransport } from '../src/core/transport-kind';
import { VsmChannel, type AlgedonicEvent, type S3Event } from '../src/vsm/vsm.channels';
import { connectClient, endpointFor } from './helpers/clients';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { BOTH, raw } from './helpers/streamable-http-client';
import { waitUntil } from './helpers/upstream-test-kit';

const VERSION = '2025-11-25';
const RESET_MS = 400;

interface Attempt {
  status: number;
  retryAfter: string | undefined;
  body: string;
}

/** Starts a new session on `kind` (raw: the refusal's status, headers and body are what is checked). */
async function attempt(
  base: string,
  kind: ClientTransport,
  service?: string,
): Promise<Attempt & { close(): void }> {
  if (kind === 'streamable') {
    const res = await raw(base, {
      path: service ? `/mcp/${service}` : '/mcp',
      headers: { 'content-type': 'application/json', accept: BOTH },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: {
          protocolVersion: VERSION,
          capabilities: {},
          clientInfo: { name: 'guard-test', version: '1' },
        },
      }),
    });
    const sessionId = res.headers['mcp-session-id'] as string | undefined;
    return {
      status: res.status,
      retryAfter: res.headers['retry-after'] as string | undefined,
      body: res.text,
      close: () => {
        if (sessionId) void raw(base, { method: 'DELETE', headers: { 'mcp-session-id': sessionId } });
      },
    };
  }
  if (kind === 'sse') {
    const ac = new AbortController();
    const res = await fetch(endpointFor(base, 'sse', service), {
      headers: { accept: 'text/event-stream' },
      signal: ac.signal,
    });
    const ok = res.status === 200;
    const body = ok ? '' : await res.text();
    return {
      status: res.status,
      retryAfter: res.headers.get('retry-after') ?? undefined,
      body,
      close: () => ac.abort(),
    };
  }
  const ws = new WebSocket(endpointFor(base, 'ws', service), 'mcp');
  return new Promise((resolve, reject) => {
    ws.once('open', () =>
      resolve({ status: 101, retryAfter: undefined, body: '', close: () => ws.close(1000) }),
    );
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          retryAfter: res.headers['retry-after'] as string | undefined,
          body,
          close: () => undefined,
        }),
      );
    });
    ws.once('error', (err) => reject(err));
  });
}

function assertRefused(a: Attempt, what: string, reason: RegExp): void {
  assert.equal(a.status, 503, `${what}: 503 (${a.body})`);
  assert.ok(Number(a.retryAfter) >= 1, `${what}: Retry-After (${String(a.retryAfter)})`);
  const error = JSON.parse(a.body).error;
  assert.equal(error.code, ErrorCode.Overloaded, `${what}: −31003`);
  assert.match(error.message, reason, what);
}

describe('client transport guard: breakers and connection caps per client transport', () => {
  let gw: RunningGateway;
  let emitter: EventEmitter2;
  let guard: ClientTransportGuardService;
  const algedonic: AlgedonicEvent[] = [];
  const s3 = (event: S3Event) => emitter.emit(VsmChannel.S3Control, event);

  before(async () => {
    gw = await startGateway({
      defaultService: 'demo',
      services: {
        demo: { replicas: [{ transport: 'embedded', server: 'demo' }] },
        // A genuine gateway-side failure: the gateway cannot start this service's upstream at all.
        broken: { replicas: [{ transport: 'stdio', command: '/nonexistent/mcp-server' }] },
      },
      clientBreaker: {
        errorThresholdPercentage: 50,
        volumeThreshold: 3,
        resetTimeoutMs: RESET_MS,
        rollingWindowMs: 10_000,
      },
    });
    emitter = gw.gateway.app.get(EventEmitter2);
    guard = gw.gateway.app.get(ClientTransportGuardService);
    emitter.on(VsmChannel.Algedonic, (e: AlgedonicEvent) => algedonic.push(e));
  });

  after(async () => {
    await gw?.close();
  });

  for (const kind of ['streamable', 'sse', 'ws'] as const) {
    test(`forced open, ${kind} refuses new sessions; other transports and open ${kind} sessions keep working`, async () => {
      const held = await connectClient(gw.url, kind);
      s3({ type: 'force_circuit_state', transport: kind, state: 'open' });
      assert.equal(guard.state(kind), 'open');

      assertRefused(
        await attempt(gw.url, kind),
        `new ${kind} session`,
        new RegExp(`${kind} transport is failing`),
      );
      await held.client.ping(); // the open session on the forced transport still answers
      for (const other of (['streamable', 'sse', 'ws'] as const).filter((k) => k !== kind)) {
        const c = await connectClient(gw.url, other);
        await c.client.ping();
        await c.client.close();
      }

      s3({ type: 'force_circuit_state', transport: kind, state: 'closed' });
      const admitted = await attempt(gw.url, kind);
      assert.equal(admitted.status, kind === 'ws' ? 101 : 200, `forced closed admits (${admitted.body})`);
      admitted.close();
      s3({ type: 'force_circuit_state', transport: kind, state: 'auto' });
      assert.equal(guard.state(kind), 'closed');
      await held.client.close();
    });
  }

  test('gateway-side failures open the streamable breaker: one pain, then after recovery one pleasure', async () => {
    const source = 'transport:streamable';
    const before = algedonic.length;
    // Each new session on the broken service fails: its upstream cannot be spawned. The sessions
    // the earlier tests served are in the window too, so it takes a few more than the volume.
    let failures = 0;
    while (guard.state('streamable') !== 'open') {
      assert.ok(++failures <= 20, 'the breaker opens within 20 failed session creations');
      const a = await attempt(gw.url, 'streamable', 'broken');
      assert.equal(JSON.parse(a.body).error?.code, ErrorCode.UpstreamUnavailable, a.body);
      a.close();
    }
    assertRefused(
      await attempt(gw.url, 'streamable'),
      'a new session on a healthy service',
      /streamable transport is failing/,
    );
    // Only the failing transport refuses.
    const ws = await connectClient(gw.url, 'ws');
    await ws.client.ping();
    await ws.client.close();

    await waitUntil(() => guard.state('streamable') === 'half_open', 5 * RESET_MS + 2000, 'half-open');
    const probe = await connectClient(gw.url, 'streamable');
    await probe.client.ping();
    await waitUntil(
      () => guard.state('streamable') === 'closed',
      5000,
      'the breaker to close after the probe',
    );
    await probe.client.close();

    const events = algedonic.slice(before).filter((e) => e.source === source);
    assert.deepEqual(
      events.map((e) => e.type),
      ['pain', 'pleasure'],
      `exactly one pain and one pleasure from ${source}: ${JSON.stringify(events)}`,
    );
  });

  for (const kind of ['streamable', 'sse', 'ws'] as const) {
    test(`allocate_connections(${kind}, n) caps live connections on ${kind}; raising the cap admits again`, async () => {
      const base = guard.stats()[kind].live;
      s3({ type: 'allocate_connections', transport: kind, count: base + 2 });
      const a = await attempt(gw.url, kind);
      const b = await attempt(gw.url, kind);
      assert.equal(a.status, kind === 'ws' ? 101 : 200);
      assert.equal(b.status, kind === 'ws' ? 101 : 200);
      assertRefused(
        await attempt(gw.url, kind),
        `${kind} over its cap`,
        new RegExp(`${kind} transport is at its connection cap`),
      );
      // Another transport is not capped by it.
      const other = kind === 'ws' ? 'streamable' : 'ws';
      const c = await connectClient(gw.url, other);
      await c.client.ping();
      await c.client.close();

      s3({ type: 'allocate_connections', transport: kind, count: base + 3 });
      const third = await attempt(gw.url, kind);
      assert.equal(third.status, kind === 'ws' ? 101 : 200, 'a raised cap admits again');
      assertRefused(await attempt(gw.url, kind), `${kind} over the raised cap`, /connection cap/);

      s3({ type: 'allocate_connections', transport: kind, count: 0 });
      const uncapped = await attempt(gw.url, kind);
      assert.equal(uncapped.status, kind === 'ws' ? 101 : 200, 'count 0: no cap');
      for (const x of [a, b, third, uncapped]) x.close();
      await waitUntil(() => guard.stats()[kind].live <= base, 10_000, `${kind} connections to end`);
    });
  }
});

describe('client transport guard: internal errors caught by the error boundary open that transport’s breaker', () => {
  let gw: RunningGateway;
  const algedonic: AlgedonicEvent[] = [];

  before(async () => {
    // With the JSON depth bound lifted, a deeply nested 2026-07-28 request reaches code that
    // overflows the stack: a genuine gateway bug, answered 500 −32603 by the /mcp error boundary.
    gw = await startGateway({
      defaultService: 'demo',
      services: { demo: { replicas: [{ transport: 'embedded', server: 'demo' }] } },
      maxJsonDepth: 100_000,
      clientBreaker: {
        errorThresholdPercentage: 50,
        volumeThreshold: 3,
        resetTimeoutMs: 60_000,
        rollingWindowMs: 10_000,
      },
    });
    gw.gateway.app.get(EventEmitter2).on(VsmChannel.Algedonic, (e: AlgedonicEvent) => algedonic.push(e));
  });

  after(async () => {
    await gw?.close();
  });

  test('three internal errors on /mcp: streamable refuses new sessions, ws still serves, one pain', async () => {
    const guard = gw.gateway.app.get(ClientTransportGuardService);
    const meta = {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': {},
    };
    const deep = '['.repeat(10_000) + ']'.repeat(10_000);
    const body = `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":${JSON.stringify(meta)},"deep":${deep}}}`;
    for (let i = 0; i < 3; i++) {
      const res = await raw(gw.url, {
        headers: {
          'content-type': 'application/json',
          accept: BOTH,
          'mcp-protocol-version': '2026-07-28',
          'mcp-method': 'tools/list',
        },
        body,
      });
      assert.equal(res.status, 500, res.text);
      assert.equal(res.json.error.code, ErrorCode.InternalError, res.text);
    }
    await waitUntil(() => guard.state('streamable') === 'open', 5000, 'the streamable breaker to open');
    assertRefused(
      await attempt(gw.url, 'streamable'),
      'a new streamable session',
      /streamable transport is failing/,
    );
    const ws = await connectClient(gw.url, 'ws');
    await ws.client.ping();
    await ws.client.close();
    assert.equal(guard.state('ws'), 'closed');
    assert.deepEqual(
      algedonic.filter((e) => e.source.startsWith('transport:')).map((e) => `${e.type} ${e.source}`),
      ['pain transport:streamable'],
    );
  });
});
