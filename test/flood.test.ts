/**
 * Flood protection and slow requests, against the real gateway on loopback. Distinct loopback
 * source addresses (127.0.0.2, 127.0.0.3, … via `localAddress`; Linux routes all of 127/8 to lo)
 * stand for different clients. Each refusal row asserts what the client sees (status or close
 * code, Retry-After), the counter in GatewayMetrics.floodRefusals, and that no session leaked.
 */
import assert from 'node:assert/strict';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { WebSocket } from 'ws';
import { ErrorCode } from '../libs/protocol/src';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { FloodService } from '../src/policy/flood/flood.service';
import { SessionService } from '../src/session/session.module';
import { VsmBus } from '../src/vsm/vsm-bus.service';
import { VsmChannel } from '../src/vsm/vsm.channels';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { waitUntil } from './helpers/wait';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'flood', version: '1' } },
});
const POST_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** One HTTP request from `from` on its own connection (closed afterwards). */
function send(
  base: string,
  path: string,
  options: { from?: string; method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((ok, fail) => {
    const req = request(
      new URL(path, base),
      {
        method: options.method ?? 'GET',
        headers: options.headers,
        localAddress: options.from ?? '127.0.0.1',
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => ok({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', fail);
    req.end(options.body);
  });
}

const initialize = (base: string, from: string, headers: Record<string, string> = {}) =>
  send(base, '/mcp', { from, method: 'POST', headers: { ...POST_HEADERS, ...headers }, body: INIT });

/** A raw TCP connection from `from`, once connected. */
function openSocket(url: string, from: string): Promise<Socket> {
  const { port } = new URL(url);
  return new Promise((ok, fail) => {
    const s = connect({ host: '127.0.0.1', port: Number(port), localAddress: from });
    s.once('connect', () => ok(s));
    s.once('error', fail);
  });
}

/** A WebSocket upgrade from `from`: the refusal's status and headers, or the open socket. */
function upgrade(
  base: string,
  from: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: IncomingHttpHeaders } | { ws: WebSocket }> {
  return new Promise((ok, fail) => {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws`, 'mcp', { localAddress: from, headers });
    ws.once('open', () => ok({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      ok({ status: res.statusCode ?? 0, headers: res.headers });
      res.resume();
      ws.terminate();
    });
    ws.once('error', fail);
  });
}

function assertRefused(answer: Answer, retryAfter: string): void {
  assert.equal(answer.status, 503, answer.body);
  assert.equal(answer.headers['retry-after'], retryAfter);
  const body = JSON.parse(answer.body) as { error: { code: number; data: { retryAfterMs: number } } };
  assert.equal(body.error.code, ErrorCode.Overloaded);
  assert.equal(typeof body.error.data.retryAfterMs, 'number');
}

function closeAll(sockets: Socket[]): void {
  for (const s of sockets) s.destroy();
}

describe('flood protection: caps and rates', () => {
  let gw: RunningGateway;
  let metrics: GatewayMetrics;
  let sessions: SessionService;
  let flood: FloodService;
  const refusals = (reason: string) => metrics.floodRefusals.get(reason) ?? 0;

  before(async () => {
    gw = await startGateway({
      trustedProxies: ['127.0.0.7'],
      flood: {
        maxConnections: 6,
        maxConnectionsPerIp: 3,
        connectRatePerIp: 1,
        connectBurstPerIp: 10,
        sessionRatePerIp: 1,
        sessionBurstPerIp: 5,
        maxSessionsPerClient: 2,
        initDeadlineMs: 600,
        headersTimeoutMs: 5000,
      },
    });
    metrics = gw.gateway.app.get(GatewayMetrics);
    sessions = gw.gateway.app.get(SessionService);
    flood = gw.gateway.app.get(FloodService);
  });
  after(() => gw.close());

  /** Waits until the gateway has seen every test connection close (the caps count live ones). */
  const settled = () =>
    waitUntil(() => flood.guard.connections === 0, 5000, 'every test connection to close');

  test('per-IP connection cap: the 4th connection from one address gets 503 + Retry-After, others pass', async () => {
    await settled();
    const held = await Promise.all([1, 2, 3].map(() => openSocket(gw.url, '127.0.0.2')));
    await waitUntil(
      () => flood.guard.connectionsFrom('127.0.0.2') === 3,
      5000,
      'three connections from 127.0.0.2',
    );
    const before = sessions.size;
    assertRefused(await initialize(gw.url, '127.0.0.2'), '1');
    assert.equal(refusals('connections_per_ip'), 1);
    assert.equal(sessions.size, before, 'no session was created');
    const other = await send(gw.url, '/health', { from: '127.0.0.3' });
    assert.equal(other.status, 200, 'another address is not affected');
    closeAll(held);
    await waitUntil(() => flood.guard.connectionsFrom('127.0.0.2') === 0, 5000, 'them to close');
    assert.equal(
      (await send(gw.url, '/health', { from: '127.0.0.2' })).status,
      200,
      'a freed place is taken again',
    );
  });

  test('global connection cap: past it HTTP gets 503 and a WebSocket upgrade is refused with 503', async () => {
    await settled();
    const held = await Promise.all([10, 11, 12, 13, 14, 15].map((n) => openSocket(gw.url, `127.0.0.${n}`)));
    await waitUntil(() => flood.guard.connections === 6, 5000, 'six connections');
    const before = sessions.size;
    assertRefused(await initialize(gw.url, '127.0.0.16'), '1');
    const ws = await upgrade(gw.url, '127.0.0.17');
    assert.ok('status' in ws);
    assert.equal(ws.status, 503);
    assert.equal(ws.headers['retry-after'], '1');
    assert.equal(refusals('connections'), 2);
    assert.equal(sessions.size, before);
    closeAll(held);
  });

  test('per-IP connect rate: past the burst a new connection gets 503 with Retry-After', async () => {
    await settled();
    const statuses: number[] = [];
    let refused: Answer | undefined;
    for (let i = 0; i < 14 && refused === undefined; i++) {
      const answer = await send(gw.url, '/health', { from: '127.0.0.30' });
      statuses.push(answer.status);
      if (answer.status === 503) refused = answer;
    }
    assert.ok(refused, `no refusal in ${statuses.join(',')}`);
    assertRefused(refused, '1');
    // The burst of 10 passed (at 1/s, one more may have refilled meanwhile).
    assert.ok(statuses.indexOf(503) >= 10, statuses.join(','));
    assert.equal(refusals('connect_rate'), 1);
  });

  test('sessions per client: the 3rd session of one client id is refused on every transport; ending one frees a place', async () => {
    await settled();
    const id = { 'x-mcp-client-id': 'capped-client' };
    const first = await initialize(gw.url, '127.0.0.4', id);
    const second = await initialize(gw.url, '127.0.0.4', id);
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    const before = sessions.size;
    assertRefused(await initialize(gw.url, '127.0.0.4', id), '5');
    const sse = await send(gw.url, '/sse', {
      from: '127.0.0.4',
      headers: { accept: 'text/event-stream', ...id },
    });
    assertRefused(sse, '5');
    const ws = await upgrade(gw.url, '127.0.0.4', id);
    assert.ok('status' in ws);
    assert.equal(ws.status, 503);
    assert.equal(ws.headers['retry-after'], '5');
    assert.equal(refusals('sessions_per_client'), 3);
    assert.equal(sessions.size, before, 'no session was created');
    const deleted = await send(gw.url, '/mcp', {
      from: '127.0.0.4',
      method: 'DELETE',
      headers: { ...id, 'mcp-session-id': String(first.headers['mcp-session-id']) },
    });
    assert.equal(deleted.status, 200);
    assert.equal((await initialize(gw.url, '127.0.0.4', id)).status, 200);
  });

  test('per-IP session rate, and X-Forwarded-For believed only from a trusted proxy', async () => {
    await settled();
    for (let i = 0; i < 5; i++) assert.equal((await initialize(gw.url, '127.0.0.6')).status, 200);
    const before = sessions.size;
    assertRefused(await initialize(gw.url, '127.0.0.6'), '1');
    assert.equal(sessions.size, before);
    const rate0 = refusals('session_rate');
    assert.equal(rate0, 1);

    // 127.0.0.7 is a trusted proxy: each forwarded client has its own bucket.
    const via = (xff: string) => initialize(gw.url, '127.0.0.7', { 'x-forwarded-for': xff });
    for (let i = 0; i < 5; i++) assert.equal((await via('203.0.113.1')).status, 200);
    assertRefused(await via('203.0.113.1'), '1');
    assert.equal((await via('203.0.113.2')).status, 200, 'another forwarded client is not affected');

    // 127.0.0.8 is not trusted: a forged X-Forwarded-For does not buy a new bucket.
    const forged = (n: number) => initialize(gw.url, '127.0.0.8', { 'x-forwarded-for': `198.51.100.${n}` });
    for (let i = 0; i < 5; i++) assert.equal((await forged(i)).status, 200);
    assertRefused(await forged(99), '1');
    assert.equal(refusals('session_rate'), rate0 + 2);
  });

  test('per-IP session rate on every transport: legacy SSE and WebSocket are refused like Streamable HTTP', async () => {
    await settled();
    for (let i = 0; i < 5; i++) {
      const up = await upgrade(gw.url, '127.0.0.50');
      assert.ok('ws' in up, 'within the burst');
      // Dropped at once (the session stays, resumable): the per-address connection cap is 3 here.
      up.ws.terminate();
      await waitUntil(() => flood.guard.connectionsFrom('127.0.0.50') === 0, 5000, 'the connection to close');
    }
    const before = sessions.size;
    const count = refusals('session_rate');
    const sse = await send(gw.url, '/sse', { from: '127.0.0.50', headers: { accept: 'text/event-stream' } });
    assertRefused(sse, '1');
    const ws = await upgrade(gw.url, '127.0.0.50');
    assert.ok('status' in ws);
    assert.equal(ws.status, 503);
    assert.equal(ws.headers['retry-after'], '1');
    assertRefused(await initialize(gw.url, '127.0.0.50'), '1');
    assert.equal(refusals('session_rate'), count + 3);
    assert.equal(sessions.size, before, 'no session was created');
  });

  test('initialize deadline: a WebSocket that never sends initialize is closed 1008 and its session ends', async () => {
    await settled();
    const before = sessions.size;
    const opened = await upgrade(gw.url, '127.0.0.9');
    assert.ok('ws' in opened);
    const started = Date.now();
    const code = await new Promise<number>((ok) => opened.ws.once('close', (c) => ok(c)));
    assert.equal(code, 1008);
    assert.ok(Date.now() - started < 3000);
    assert.ok((metrics.floodRefusals.get('init_deadline') ?? 0) >= 1);
    await waitUntil(() => sessions.size === before, 5000, 'the session to end');

    // One that initializes in time stays: the deadline's watch lets it go without a refusal.
    const refused = metrics.floodRefusals.get('init_deadline') ?? 0;
    const good = await upgrade(gw.url, '127.0.0.9');
    assert.ok('ws' in good);
    let answered = false;
    good.ws.on('message', (data) => (answered ||= (JSON.parse(String(data)) as { id?: unknown }).id === 1));
    good.ws.send(INIT);
    await waitUntil(
      () => answered && flood.guard.pendingInitializations === 0,
      5000,
      'the initialize answer, and the deadline to let the connection go',
    );
    assert.equal(metrics.floodRefusals.get('init_deadline') ?? 0, refused, 'no deadline refusal');
    assert.equal(good.ws.readyState, WebSocket.OPEN);
    good.ws.close(1000);
  });

  test('initialize deadline: a legacy SSE stream that never sends initialize ends with an error event', async () => {
    await settled();
    const before = sessions.size;
    const count = refusals('init_deadline');
    const answer = await send(gw.url, '/sse', {
      from: '127.0.0.9',
      headers: { accept: 'text/event-stream' },
    });
    assert.equal(answer.status, 200);
    assert.match(answer.body, /event: endpoint/);
    assert.match(answer.body, /event: error\ndata: .*"closeCode":1008/);
    assert.equal(refusals('init_deadline'), count + 1);
    await waitUntil(() => sessions.size === before, 5000, 'the session to end');
  });

  test('S5 policy_update caps changes a cap for the next session', async () => {
    await settled();
    const id = { 'x-mcp-client-id': 's5-client' };
    assert.equal((await initialize(gw.url, '127.0.0.40', id)).status, 200);
    gw.gateway.app.get(VsmBus).publish(VsmChannel.S5Policy, {
      type: 'policy_update',
      scope: 'gateway',
      constraints: { caps: { maxSessionsPerClient: 1 } },
    });
    assertRefused(await initialize(gw.url, '127.0.0.40', id), '5');
    gw.gateway.app.get(VsmBus).publish(VsmChannel.S5Policy, {
      type: 'policy_update',
      scope: 'gateway',
      constraints: { caps: { maxSessionsPerClient: 2 } },
    });
    assert.equal((await initialize(gw.url, '127.0.0.40', id)).status, 200);
  });
});

/** Writes `head` and then `drip` one piece every `everyMs`, until the server answers or closes. */
function dribble(
  url: string,
  head: string,
  drip: string,
  everyMs: number,
): Promise<{ response: string; closedAfterMs: number }> {
  const { port } = new URL(url);
  return new Promise((ok, fail) => {
    const started = Date.now();
    const s = connect({ host: '127.0.0.1', port: Number(port) });
    let response = '';
    let timer: NodeJS.Timeout | undefined;
    s.once('connect', () => {
      if (head) s.write(head);
      if (drip) timer = setInterval(() => s.writable && s.write(drip), everyMs);
    });
    s.on('data', (d) => (response += d.toString()));
    s.once('close', () => {
      clearInterval(timer);
      ok({ response, closedAfterMs: Date.now() - started });
    });
    s.once('error', (err) => {
      clearInterval(timer);
      if (response) ok({ response, closedAfterMs: Date.now() - started });
      else fail(err);
    });
    // Bound: a server that never cuts fails the test instead of hanging it.
    setTimeout(() => s.destroy(), 8000).unref();
  });
}

describe('slow and oversize requests', () => {
  let gw: RunningGateway;
  let metrics: GatewayMetrics;
  let sessions: SessionService;
  const refusals = (reason: string) => metrics.floodRefusals.get(reason) ?? 0;
  const host = () => `Host: ${new URL(gw.url).host}\r\n`;

  before(async () => {
    gw = await startGateway({
      maxBodyBytes: 2048,
      ws: { maxFrameBytes: 2048 },
      flood: { headersTimeoutMs: 500, requestTimeoutMs: 1000, maxHeaderBytes: 4096 },
    });
    metrics = gw.gateway.app.get(GatewayMetrics);
    sessions = gw.gateway.app.get(SessionService);
  });
  after(() => gw.close());

  test('slowloris: a request head dribbled a line at a time is cut with 408 by the headers timeout', async () => {
    const before = refusals('request_timeout');
    const cut = await dribble(gw.url, `POST /mcp HTTP/1.1\r\n${host()}`, 'X-Slow: a\r\n', 100);
    assert.match(cut.response, /^HTTP\/1\.1 408/);
    assert.ok(cut.closedAfterMs >= 450 && cut.closedAfterMs < 2500, `${cut.closedAfterMs} ms`);
    assert.equal(refusals('request_timeout'), before + 1);
  });

  test('a connection that never sends a request is closed by the headers timeout', async () => {
    const cut = await dribble(gw.url, '', '', 0);
    assert.match(cut.response, /^HTTP\/1\.1 408/);
    assert.ok(cut.closedAfterMs < 2500, `${cut.closedAfterMs} ms`);
  });

  test('a body dribbled a byte at a time is cut with 408 by the request timeout; no session is created', async () => {
    const before = sessions.size;
    const head = `POST /mcp HTTP/1.1\r\n${host()}Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n`;
    const cut = await dribble(gw.url, head, ' ', 100);
    assert.match(cut.response, /^HTTP\/1\.1 408/);
    assert.ok(cut.closedAfterMs >= 900 && cut.closedAfterMs < 3000, `${cut.closedAfterMs} ms`);
    assert.equal(sessions.size, before);
  });

  test('the request timeout does not cut a long SSE stream or a long POST response', async () => {
    // GET /sse held well past the 1 s request timeout.
    const sse = await new Promise<{ closed: boolean; body: string }>((ok, fail) => {
      const req = request(new URL('/sse', gw.url), { headers: { accept: 'text/event-stream' } }, (res) => {
        let body = '';
        let closed = false;
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('close', () => (closed = true));
        setTimeout(() => {
          ok({ closed, body });
          req.destroy();
        }, 1800);
      });
      req.on('error', fail);
      req.end();
    });
    assert.equal(sse.closed, false);
    assert.match(sse.body, /event: endpoint/);

    // A tool call that takes 1.8 s over Streamable HTTP is answered.
    const client = new Client({ name: 'slow', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', gw.url)));
    const result = await client.callTool({ name: 'long_task', arguments: { duration: 1.8, steps: 2 } });
    assert.equal(result.isError, undefined);
    await client.close();
  });

  test('431 for a request head over MAX_HEADER_BYTES', async () => {
    const before = refusals('header_too_large');
    const answer = await send(gw.url, '/mcp', { headers: { 'x-big': 'a'.repeat(5000) } });
    assert.equal(answer.status, 431);
    assert.equal(refusals('header_too_large'), before + 1);
  });

  test('413 for a body over MAX_BODY_BYTES on /mcp (length and chunked) and /messages', async () => {
    const before = sessions.size;
    const big = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { pad: 'a'.repeat(3000) },
    });
    const withLength = await send(gw.url, '/mcp', { method: 'POST', headers: POST_HEADERS, body: big });
    assert.equal(withLength.status, 413);
    const chunked = await new Promise<number>((ok, fail) => {
      const req = request(new URL('/mcp', gw.url), { method: 'POST', headers: POST_HEADERS }, (res) => {
        res.resume();
        ok(res.statusCode ?? 0);
      });
      req.on('error', (err) => ((err as { code?: string }).code === 'ECONNRESET' ? undefined : fail(err)));
      req.write(big.slice(0, 1500));
      req.write(big.slice(1500));
      req.end();
    });
    assert.equal(chunked, 413);
    const messages = await send(gw.url, '/messages?sessionId=nope', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: big,
    });
    assert.equal(messages.status, 413);
    assert.equal(JSON.parse(messages.body).error.code, ErrorCode.InvalidRequest);
    assert.equal(sessions.size, before);
  });

  test('JSON nested deeper than MAX_JSON_DEPTH is refused with 400 / -32600; no session is created', async () => {
    const before = sessions.size;
    const deep = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":${'['.repeat(100)}${']'.repeat(100)}}`;
    const answer = await send(gw.url, '/mcp', { method: 'POST', headers: POST_HEADERS, body: deep });
    assert.equal(answer.status, 400);
    assert.equal(JSON.parse(answer.body).error.code, ErrorCode.InvalidRequest);
    assert.equal(sessions.size, before);
  });

  test('a WebSocket frame over WS_MAX_FRAME_BYTES closes the connection with 1009', async () => {
    const opened = await upgrade(gw.url, '127.0.0.1');
    assert.ok('ws' in opened);
    const closed = new Promise<number>((ok) => opened.ws.once('close', (c) => ok(c)));
    opened.ws.send(
      JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'a'.repeat(4000) } }),
    );
    assert.equal(await closed, 1009);
  });

  test('one GET listener per Streamable HTTP session: a second GET replaces the first', async () => {
    const init = await initialize(gw.url, '127.0.0.1');
    const id = String(init.headers['mcp-session-id']);
    const get = () =>
      new Promise<{ ended: Promise<string> }>((ok, fail) => {
        const req = request(
          new URL('/mcp', gw.url),
          { headers: { accept: 'text/event-stream', 'mcp-session-id': id } },
          (res) => {
            assert.equal(res.statusCode, 200);
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            ok({ ended: new Promise<string>((done) => res.once('close', () => done(body))) });
          },
        );
        req.on('error', fail);
        req.end();
      });
    const first = await get();
    const second = await get();
    // The gateway ends the first stream, saying the second replaced it (both in one step)…
    assert.match(await first.ended, /event: error\ndata: .*"message":"replaced by a newer GET stream"/);
    // …so the second is the session's stream from then on: not ended, and the session's live channel.
    const stillOpen = await Promise.race([
      second.ended.then(() => false),
      new Promise((r) => setImmediate(() => r(true))),
    ]);
    assert.equal(stillOpen, true);
    assert.equal(sessions.get(id)?.hasLiveChannel(), true, 'the session has its GET stream');
  });
});

describe('flood: a well-behaved client while others flood', () => {
  let gw: RunningGateway;
  let metrics: GatewayMetrics;

  before(async () => {
    gw = await startGateway({
      flood: {
        maxConnectionsPerIp: 100,
        connectRatePerIp: 50,
        connectBurstPerIp: 100,
        sessionRatePerIp: 10,
        sessionBurstPerIp: 20,
        headersTimeoutMs: 2000,
      },
    });
    metrics = gw.gateway.app.get(GatewayMetrics);
  });
  after(() => gw.close());

  test('127.0.0.2 opens connections as fast as it can, 127.0.0.3 floods initializes; 50 calls from 127.0.0.1 are all answered', async () => {
    // The flood runs for at least 3 s and until the good client is done (bounded at 15 s).
    const started = Date.now();
    let stopped = false;
    const deadline = Date.now() + 15_000;
    const flooding = () => !stopped && Date.now() < deadline;
    const { port } = new URL(gw.url);
    let opened = 0;
    const held = new Set<Socket>();

    // Attacker A: up to 200 connections in flight, each reopened as soon as it is closed.
    const connector = new Promise<void>((done) => {
      const open = (): void => {
        while (held.size < 200 && flooding()) {
          opened++;
          const s = connect({ host: '127.0.0.1', port: Number(port), localAddress: '127.0.0.2' });
          held.add(s);
          s.on('error', () => undefined);
          // One request line each: a refused connection answers 503 and closes at once.
          s.once('connect', () => s.write(`GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
          s.resume(); // read the answer, so the gateway's close is seen
          s.once('close', () => {
            held.delete(s);
            if (flooding()) setImmediate(open);
            else if (held.size === 0) done();
          });
        }
      };
      open();
    });

    const refusedA = () =>
      (metrics.floodRefusals.get('connections_per_ip') ?? 0) +
      (metrics.floodRefusals.get('connect_rate') ?? 0);

    // Attacker B: 20 concurrent initialize loops.
    const statusesB = new Map<number, number>();
    const requester = Promise.all(
      Array.from({ length: 20 }, async () => {
        while (flooding()) {
          const answer = await initialize(gw.url, '127.0.0.3').catch(() => ({ status: 0 }) as Answer);
          statusesB.set(answer.status, (statusesB.get(answer.status) ?? 0) + 1);
        }
      }),
    );

    // The good client, on 127.0.0.1, during the flood: once both attackers are being refused.
    await waitUntil(
      () => refusedA() > 0 && (statusesB.get(503) ?? 0) > 0,
      10_000,
      'both attackers to be refused',
    );
    const client = new Client({ name: 'good', version: '1' });
    await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', gw.url)));
    const texts: string[] = [];
    for (let i = 0; i < 50; i++) {
      const result = (await client.callTool({ name: 'echo', arguments: { text: `call ${i}` } })) as {
        content: { text: string }[];
      };
      texts.push(result.content[0].text);
    }
    assert.ok(flooding(), 'the calls ran while the flood was on');
    await new Promise((r) => setTimeout(r, Math.max(0, 3000 - (Date.now() - started))));
    stopped = true;
    for (const s of held) s.destroy();
    await Promise.all([connector, requester]);
    await client.close();

    assert.deepEqual(
      texts,
      Array.from({ length: 50 }, (_, i) => `call ${i}`),
    );
    assert.ok(opened > 200, `attacker A opened ${opened}`);
    assert.ok(refusedA() > 0, 'attacker A was refused');
    assert.ok((statusesB.get(503) ?? 0) > 0, `attacker B: ${JSON.stringify([...statusesB])}`);
    assert.ok((metrics.floodRefusals.get('session_rate') ?? 0) > 0);
  });
});
