/**
 * DNS-rebinding protection on every entry point: while bound to loopback, a Host header is served
 * only when it is strictly `host [":" port]` and the host is `localhost` or a loopback IP literal.
 * A hostile Host gets 403 (the README's refusal for a bad Host) and creates no session.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { SessionService } from '../src/session/session.module';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { rawRequest } from './helpers/raw-http';
import { SseReader } from './helpers/sse-reader';

const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 'host-guard', version: '1' },
  },
});

/** Names a rebinding attacker controls, and Host values that are not `host [":" port]` at all. */
const HOSTILE = [
  '127.attacker.example',
  '127.0.0.1.nip.io',
  '[::1].evil.com',
  '127.0.0.1:80@evil.com',
  'user@127.0.0.1',
  'evil.example.com',
  'localhost.evil.com',
  '127.0.0.1:80:81',
  '127.0.0.1:8o',
  '127.0.0.1:123456',
  '[::1',
  '::1',
  '[::2]',
  '[::1]:80.evil.com',
  '2130706433',
  '0x7f.0.0.1',
  '127.0.0.1/path',
  'localhost.',
];

interface Outcome {
  status: number;
}

/** One raw request with a forged Host; `upgrade` resolves with 101 when the handshake succeeds. */
function send(
  base: string,
  path: string,
  host: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; upgrade?: boolean } = {},
): Promise<Outcome> {
  return new Promise((ok, fail) => {
    const req = request(`${base}${path}`, {
      method: options.method ?? 'GET',
      headers: { ...options.headers, host },
    });
    req.on('response', (res) => {
      res.resume();
      // Streams stay open: the status line is all a case needs.
      ok({ status: res.statusCode ?? 0 });
      req.destroy();
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      ok({ status: 101 });
    });
    req.on('error', fail);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

const WS_HEADERS = {
  connection: 'Upgrade',
  upgrade: 'websocket',
  'sec-websocket-version': '13',
  'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
  'sec-websocket-protocol': 'mcp',
};

describe('Host check (DNS rebinding) on every entry point, bound to 127.0.0.1', () => {
  let gw: RunningGateway;
  let sessions: SessionService;
  let port: string;
  /** A Streamable HTTP session and a legacy SSE session that the hostile requests aim at. */
  let mcpSession: string;
  let sseSession: string;

  before(async () => {
    gw = await startGateway();
    sessions = gw.gateway.app.get(SessionService);
    port = new URL(gw.url).port;
    const init = await rawRequest(`${gw.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: INIT,
    });
    assert.equal(init.status, 200);
    mcpSession = String(init.headers['mcp-session-id']);
    const sse = await fetch(`${gw.url}/sse`, { headers: { accept: 'text/event-stream' } });
    assert.equal(sse.status, 200);
    const reader = new SseReader(sse);
    let endpoint = await reader.next();
    while (endpoint && endpoint.event !== 'endpoint') endpoint = await reader.next();
    sseSession = new URL(endpoint!.data, gw.url).searchParams.get('sessionId')!;
    await reader.cancel();
  });
  after(() => gw.close());

  /** Each entry point: the request, and the status a well-formed loopback Host gets. */
  const entryPoints: Array<{
    name: string;
    creates: boolean;
    expect: number;
    run: (host: string) => Promise<Outcome>;
  }> = [
    {
      name: 'POST /mcp (initialize)',
      creates: true,
      expect: 200,
      run: (host) =>
        send(gw.url, '/mcp', host, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
          body: INIT,
        }),
    },
    {
      name: 'GET /mcp (standalone stream)',
      creates: false,
      expect: 200,
      run: (host) =>
        send(gw.url, '/mcp', host, {
          headers: { accept: 'text/event-stream', 'mcp-session-id': mcpSession },
        }),
    },
    {
      name: 'GET /sse',
      creates: true,
      expect: 200,
      run: (host) => send(gw.url, '/sse', host, { headers: { accept: 'text/event-stream' } }),
    },
    {
      name: 'POST /messages',
      creates: false,
      expect: 202,
      run: (host) =>
        send(gw.url, `/messages?sessionId=${sseSession}`, host, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
        }),
    },
    {
      name: 'WebSocket upgrade on /ws',
      creates: true,
      expect: 101,
      run: (host) => send(gw.url, '/ws', host, { headers: WS_HEADERS }),
    },
    {
      name: 'WebSocket upgrade on /mcp',
      creates: true,
      expect: 101,
      run: (host) => send(gw.url, '/mcp', host, { headers: WS_HEADERS }),
    },
  ];

  for (const entry of entryPoints) {
    test(`${entry.name}: every hostile Host → 403, no session created`, async () => {
      for (const host of HOSTILE) {
        const before = sessions.size;
        const outcome = await entry.run(host);
        assert.equal(outcome.status, 403, `Host "${host}" on ${entry.name}`);
        assert.equal(sessions.size, before, `Host "${host}" on ${entry.name} created a session`);
      }
    });

    test(`${entry.name}: loopback Hosts pass`, async () => {
      for (const host of [
        `127.0.0.1:${port}`,
        `localhost:${port}`,
        'LOCALHOST',
        `[::1]:${port}`,
        '127.1.2.3',
      ]) {
        const before = sessions.size;
        const outcome = await entry.run(host);
        assert.equal(outcome.status, entry.expect, `Host "${host}" on ${entry.name}`);
        if (entry.creates) {
          // The session may be created just after the status line went out (WebSocket): poll.
          const deadline = Date.now() + 2000;
          while (sessions.size !== before + 1 && Date.now() < deadline)
            await new Promise((r) => setTimeout(r, 10));
          assert.equal(sessions.size, before + 1, `Host "${host}" on ${entry.name} made one session`);
        }
      }
    });
  }
});

describe('Host check with ALLOWED_HOSTS', () => {
  test('ALLOWED_HOSTS pins the names; a malformed Host is refused even when it starts with one', async () => {
    const gw = await startGateway({ host: '127.0.0.1', allowedHosts: ['mcp.example.com'] });
    try {
      const ok = await send(gw.url, '/sse', 'mcp.example.com:8443', {
        headers: { accept: 'text/event-stream' },
      });
      assert.equal(ok.status, 200);
      for (const host of ['mcp.example.com:80@evil.com', 'mcp.example.com.evil.com', 'evil.com']) {
        const res = await send(gw.url, '/sse', host, { headers: { accept: 'text/event-stream' } });
        assert.equal(res.status, 403, host);
      }
    } finally {
      await gw.close();
    }
  });
});

/** The routes outside the MCP transports, with what a loopback Host gets on each. */
const OTHER_ROUTES: Array<{ path: string; expect: number; headers?: Record<string, string> }> = [
  { path: '/dashboard', expect: 200 },
  { path: '/dashboard/snapshot', expect: 200 },
  { path: '/dashboard/assets/dashboard.js', expect: 200 },
  { path: '/dashboard/stream', expect: 200, headers: { accept: 'text/event-stream' } },
  { path: '/metrics', expect: 200 },
  { path: '/health', expect: 200 },
  { path: '/health/live', expect: 200 },
  { path: '/admin/services', expect: 404 },
  { path: '/admin/log-levels', expect: 404 },
  { path: '/no/such/path', expect: 404 },
];

describe('one Host/Origin check for every route of the server, bound to 127.0.0.1', () => {
  let gw: RunningGateway;
  let port: string;
  before(async () => {
    gw = await startGateway();
    port = new URL(gw.url).port;
  });
  after(() => gw.close());

  for (const route of OTHER_ROUTES) {
    test(`GET ${route.path}: every hostile Host → 403; loopback Hosts → ${route.expect}`, async () => {
      for (const host of HOSTILE) {
        const outcome = await send(gw.url, route.path, host, { headers: route.headers });
        assert.equal(outcome.status, 403, `Host "${host}" on ${route.path}`);
      }
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) {
        const outcome = await send(gw.url, route.path, host, { headers: route.headers });
        assert.equal(outcome.status, route.expect, `Host "${host}" on ${route.path}`);
      }
    });
  }

  test('the report: rebind.attacker.example gets no live figures, and a foreign Origin none either', async () => {
    const rebound = await rawRequest(`${gw.url}/dashboard/snapshot`, {
      headers: { host: 'rebind.attacker.example' },
    });
    assert.equal(rebound.status, 403);
    assert.doesNotMatch(rebound.body, /sessions|connections/);
    assert.deepEqual(JSON.parse(rebound.body), {
      statusCode: 403,
      error: 'Forbidden',
      message: 'Forbidden: Host "rebind.attacker.example" is not allowed',
    });
    const foreign = await rawRequest(`${gw.url}/dashboard/snapshot`, {
      headers: { origin: 'http://rebind.attacker.example' },
    });
    assert.equal(foreign.status, 403);
    const local = await rawRequest(`${gw.url}/dashboard/snapshot`, {
      headers: { origin: `http://localhost:${port}` },
    });
    assert.equal(local.status, 200);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(metrics, /mcp_gateway_errors_total\{kind="forbidden_host"\} [1-9]/);
    assert.match(metrics, /mcp_gateway_errors_total\{kind="forbidden_origin"\} [1-9]/);
  });
});

describe('ALLOWED_HOSTS lets a scraper and probes in by name', () => {
  test("Prometheus's target name and a probe's Host pass when listed; anything else is 403", async () => {
    // As docker/compose.yaml does: the names Prometheus scrapes and health checks use are listed.
    const gw = await startGateway({ host: '127.0.0.1', allowedHosts: ['gateway-1:3000', 'mcp.example.com'] });
    try {
      for (const path of ['/metrics', '/health/live', '/dashboard/snapshot']) {
        assert.equal((await send(gw.url, path, 'gateway-1:3000')).status, 200, path);
        assert.equal((await send(gw.url, path, 'mcp.example.com')).status, 200, path);
        assert.equal((await send(gw.url, path, 'gateway-2:3000')).status, 403, path);
        assert.equal((await send(gw.url, path, 'gateway-1:3001')).status, 403, path);
      }
    } finally {
      await gw.close();
    }
  });
});
