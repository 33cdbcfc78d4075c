/**
 * A session moves between WebSocket, Streamable HTTP and legacy SSE, replaying what it
 * missed; S2 allows three switches per client in its window and refuses the fourth, and
 * each transport reports the refusal in its own terms.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { WebSocket } from 'ws';
import { ErrorCode } from '../libs/protocol/src';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { SessionService } from '../src/session/session.module';
import { VsmChannel } from '../src/vsm/vsm.channels';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { SseReader } from './helpers/sse-reader';
import { waitUntil } from './helpers/wait';

const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 'init',
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'switcher', version: '1' } },
});

interface WsSession {
  ws: WebSocket;
  sessionId: string;
  frames: any[];
  closed: Promise<{ code: number; reason: string }>;
}

/** Opens a raw WebSocket (fresh or resuming) and collects frames. */
async function openWs(base: string, query = '', clientId = 'switch-client'): Promise<WsSession> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws${query}`, 'mcp', {
    headers: { 'x-mcp-client-id': clientId },
  });
  const frames: any[] = [];
  let sessionId = '';
  const hello = new Promise<void>((ok, fail) => {
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.method === 'notifications/gateway/session') {
        sessionId = msg.params.sessionId;
        ok();
      } else frames.push(msg);
    });
    ws.once('close', () => ok());
    ws.once('error', fail);
  });
  const closed = new Promise<{ code: number; reason: string }>((ok) =>
    ws.once('close', (code, reason) => ok({ code, reason: reason.toString() })),
  );
  await hello;
  return { ws, sessionId, frames, closed };
}

describe('transport failover with the default S2 limit (3 switches per 60 s)', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway();
  });
  after(() => gw.close());

  test('WS → SSE → Streamable HTTP → WS: missed messages are replayed, the fourth switch is refused', async () => {
    // 1. Start on WebSocket and finish the handshake.
    const first = await openWs(gw.url);
    first.ws.send(INIT);
    await waitUntil(() => first.frames.some((f) => f.id === 'init'), 5000, 'the initialize answer');
    first.ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
    const sessionId = first.sessionId;
    // A long task whose progress keeps coming while the client changes transport.
    first.ws.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 'long',
        method: 'tools/call',
        params: { name: 'long_task', arguments: { duration: 1.5, steps: 15 }, _meta: { progressToken: 'p' } },
      }),
    );
    await waitUntil(
      () => first.frames.some((f) => f.method === 'notifications/progress'),
      5000,
      'a first progress notification',
    );
    first.ws.terminate();
    const progressSeen = first.frames.filter((f) => f.method === 'notifications/progress').length;
    // seq of everything received: hello said seq 0, so the n-th message frame is seq n.
    let lastSeq = first.frames.length;

    // 2. Switch to legacy SSE (switch 1 of 3), resuming after lastSeq.
    const sseRes = await fetch(`${gw.url}/sse`, {
      headers: {
        accept: 'text/event-stream',
        'last-event-id': `${sessionId}.${lastSeq}`,
        'x-mcp-client-id': 'switch-client',
      },
    });
    assert.equal(sseRes.status, 200);
    const sse = new SseReader(sseRes);
    const viaSse: any[] = [];
    const m1 = await sse.nextMessage();
    assert.ok(m1);
    viaSse.push(m1.message);
    lastSeq = Number(m1.id!.split('.').pop());
    await sse.cancel();

    // 3. Switch to Streamable HTTP (switch 2): a GET with the bare seq resumes the session's stream.
    const getRes = await fetch(`${gw.url}/mcp`, {
      headers: {
        accept: 'text/event-stream',
        'mcp-session-id': sessionId,
        'last-event-id': String(lastSeq),
        'x-mcp-client-id': 'switch-client',
      },
    });
    assert.equal(getRes.status, 200);
    const get = new SseReader(getRes);
    const viaStreamable: any[] = [];
    const m2 = await get.nextMessage();
    assert.ok(m2);
    viaStreamable.push(m2.message);
    lastSeq = Number(m2.id!.split('_').pop());
    await get.cancel();

    // 4. Back to WebSocket (switch 3): everything after lastSeq, up to the final result.
    const back = await openWs(gw.url, `?sessionId=${sessionId}&lastEventId=${lastSeq}`);
    await waitUntil(() => back.frames.some((f) => f.id === 'long'), 10_000, "the long call's answer");
    const all = [...first.frames, ...viaSse, ...viaStreamable, ...back.frames];
    const progress = all.filter((f) => f.method === 'notifications/progress').map((f) => f.params.progress);
    assert.deepEqual(
      progress,
      Array.from({ length: 15 }, (_, i) => i + 1),
      `every progress step exactly once across 4 connections (first connection saw ${progressSeen})`,
    );
    assert.equal(all.filter((f) => f.id === 'long').length, 1, 'one result');
    back.ws.close(4100);

    // 5. A fourth switch inside the window is refused — on every transport, with the reason.
    const refusedSse = await fetch(`${gw.url}/sse`, {
      headers: { 'last-event-id': `${sessionId}.${lastSeq}`, 'x-mcp-client-id': 'switch-client' },
    });
    assert.equal(refusedSse.status, 409);
    const sseBody = (await refusedSse.json()) as any;
    assert.equal(sseBody.error.code, ErrorCode.TransportSwitchRefused);
    assert.match(sseBody.error.message, /3 switches in the last 60 s/);

    const refusedPost = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': sessionId,
        'mcp-protocol-version': '2025-06-18',
        'x-mcp-client-id': 'switch-client',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'tools/list' }),
    });
    assert.equal(refusedPost.status, 409);
    assert.equal(((await refusedPost.json()) as any).error.code, ErrorCode.TransportSwitchRefused);

    // Staying on the transport the session is on now (WebSocket) is not a switch.
    const stay = await openWs(gw.url, `?sessionId=${sessionId}&lastEventId=${lastSeq + back.frames.length}`);
    assert.equal(stay.sessionId, sessionId);
    stay.ws.close(1000);

    const metrics = gw.gateway.app.get(GatewayMetrics);
    assert.equal(metrics.errors.get('transport_switch_refused'), 2);
    assert.equal(
      [...metrics.transportSwitches.values()].reduce((a, b) => a + b, 0),
      3,
    );
  });
});

describe('WebSocket reports a refused switch with close code 4009', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway({ s2: { maxSwitches: 0, windowMs: 60_000 } });
  });
  after(() => gw.close());

  test('a session from legacy SSE cannot move to WebSocket when S2 says no', async () => {
    const res = await fetch(`${gw.url}/sse`, { headers: { accept: 'text/event-stream' } });
    const reader = new SseReader(res);
    const endpoint = await reader.next();
    const sessionId = new URL(endpoint!.data, gw.url).searchParams.get('sessionId')!;
    await reader.cancel();
    const ws = new WebSocket(
      `${gw.url.replace(/^http/, 'ws')}/ws?sessionId=${sessionId}&lastEventId=0`,
      'mcp',
    );
    const closed = await new Promise<{ code: number; reason: string }>((ok) =>
      ws.once('close', (code, reason) => ok({ code, reason: reason.toString() })),
    );
    assert.equal(closed.code, 4009);
    assert.match(closed.reason, /switch refused/);
  });
});

/** A ping over Streamable HTTP for a session (its id and client named as given); the raw response. */
function postPing(base: string, sessionId: string, id: string, clientId?: string, path = '/mcp') {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-session-id': sessionId,
    'mcp-protocol-version': '2025-06-18',
  };
  if (clientId !== undefined) headers['x-mcp-client-id'] = clientId;
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' }),
  });
}

/** A WebSocket session that finished initialize. */
async function initializedWs(base: string, query = '', clientId?: string): Promise<WsSession> {
  const s = clientId === undefined ? await openWsQueryOnly(base, query) : await openWs(base, query, clientId);
  s.ws.send(INIT);
  await waitUntil(() => s.frames.some((f) => f.id === 'init'), 5000, 'the initialize answer');
  s.ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
  return s;
}

/** Like openWs, for a client that names itself only in the query (`?client_id=`). */
async function openWsQueryOnly(base: string, query: string): Promise<WsSession> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws${query}`, 'mcp');
  const frames: any[] = [];
  let sessionId = '';
  const hello = new Promise<void>((ok, fail) => {
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.method === 'notifications/gateway/session') {
        sessionId = msg.params.sessionId;
        ok();
      } else frames.push(msg);
    });
    ws.once('error', fail);
  });
  const closed = new Promise<{ code: number; reason: string }>((ok) =>
    ws.once('close', (code, reason) => ok({ code, reason: reason.toString() })),
  );
  await hello;
  return { ws, sessionId, frames, closed };
}

describe('POST /messages asks S2 like every other transport switch', () => {
  let gw: RunningGateway;
  let metrics: GatewayMetrics;
  before(async () => {
    gw = await startGateway({ s2: { maxSwitches: 1, windowMs: 60_000 } });
    metrics = gw.gateway.app.get(GatewayMetrics);
  });
  after(() => gw.close());

  test('a WebSocket session: the first POST is a counted switch, the next switch past the limit gets 409', async () => {
    const s = await initializedWs(gw.url, '', 'messages-client');
    const res = await fetch(`${gw.url}/messages?sessionId=${s.sessionId}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-mcp-client-id': 'messages-client' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 'p1', method: 'ping' }),
    });
    assert.equal(res.status, 202);
    assert.equal(metrics.transportSwitches.get('ws->sse'), 1, 'S2 was asked and counted the switch');
    // The answer goes where the session's connection is (the WebSocket still carries it).
    await waitUntil(() => s.frames.some((f) => f.id === 'p1'), 5000, 'the answer to p1');
    // A second switch (to Streamable HTTP) is over this client's limit of 1.
    const refused = await postPing(gw.url, s.sessionId, 'p2', 'messages-client');
    assert.equal(refused.status, 409);
    assert.equal(((await refused.json()) as any).error.code, ErrorCode.TransportSwitchRefused);
    s.ws.terminate();
  });

  test('a Streamable HTTP session over the limit: POST /messages is refused with 409 −31007, nothing delivered', async () => {
    const init = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'x-mcp-client-id': 'messages-client',
      },
      body: INIT,
    });
    assert.equal(init.status, 200);
    const sessionId = init.headers.get('mcp-session-id')!;
    // This client already used its one switch above: moving to legacy SSE is refused.
    const before = metrics.transportSwitches.get('streamable->sse') ?? 0;
    const res = await fetch(`${gw.url}/messages?sessionId=${sessionId}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-mcp-client-id': 'messages-client' },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    assert.equal(res.status, 409);
    const body = (await res.json()) as any;
    assert.equal(body.error.code, ErrorCode.TransportSwitchRefused);
    assert.match(body.error.message, /switch refused/);
    assert.equal(metrics.transportSwitches.get('streamable->sse') ?? 0, before);
    // Still a Streamable HTTP session: it answers there as before.
    assert.equal((await postPing(gw.url, sessionId, 'after', 'messages-client')).status, 200);
  });
});

describe('two requests racing onto a new transport are one switch', () => {
  let gw: RunningGateway;
  let metrics: GatewayMetrics;
  before(async () => {
    gw = await startGateway({ s2: { maxSwitches: 2, windowMs: 60_000 } });
    metrics = gw.gateway.app.get(GatewayMetrics);
  });
  after(() => gw.close());

  test('two concurrent POSTs from WebSocket to Streamable HTTP: both served, S2 counts 1, one switch left', async () => {
    const s = await initializedWs(gw.url, '', 'racer');
    s.ws.terminate();
    await s.closed;
    // An S2 that takes its time (a deployment's coordinator across the network): it holds its
    // answer (no opinion) until both requests have reached the gateway, so they truly race.
    const server = gw.gateway.app.getHttpServer();
    const emitter = gw.gateway.app.get(EventEmitter2);
    let arrived = 0;
    let asked = 0;
    const countRequest = () => arrived++;
    const slowS2 = async () => {
      asked++;
      await waitUntil(() => arrived >= 2, 5000, 'both requests to reach the gateway');
      return undefined;
    };
    server.on('request', countRequest);
    emitter.on(VsmChannel.S2Coordination, slowS2);
    let a: Response;
    let b: Response;
    try {
      [a, b] = await Promise.all([
        postPing(gw.url, s.sessionId, 'race-a', 'racer'),
        postPing(gw.url, s.sessionId, 'race-b', 'racer'),
      ]);
    } finally {
      emitter.off(VsmChannel.S2Coordination, slowS2);
      server.off('request', countRequest);
    }
    assert.equal(arrived, 2);
    assert.equal(asked, 1, 'S2 asked once for the one switch');
    assert.deepEqual([a.status, b.status], [200, 200]);
    assert.equal(((await a.json()) as any).id, 'race-a');
    assert.equal(((await b.json()) as any).id, 'race-b');
    assert.equal(metrics.transportSwitches.get('ws->streamable'), 1, 'one switch counted');
    // The limit is 2, so exactly one more switch is allowed (back to WebSocket) and a third refused.
    const back = await openWs(gw.url, `?sessionId=${s.sessionId}&lastEventId=0`, 'racer');
    assert.equal(back.sessionId, s.sessionId, 'second switch allowed');
    back.ws.terminate();
    await back.closed;
    const third = await fetch(`${gw.url}/sse`, {
      headers: {
        accept: 'text/event-stream',
        'last-event-id': `${s.sessionId}.0`,
        'x-mcp-client-id': 'racer',
      },
    });
    assert.equal(third.status, 409, 'third switch refused');
  });
});

describe('Streamable HTTP takes the client id from ?client_id= like the other transports', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway();
  });
  after(() => gw.close());

  test('a WebSocket session of a client named in the query fails over to Streamable HTTP with the same query', async () => {
    const s = await initializedWs(gw.url, '?client_id=query-client');
    s.ws.terminate();
    await s.closed;
    const res = await postPing(gw.url, s.sessionId, 'q1', undefined, '/mcp?client_id=query-client');
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as any).id, 'q1');
    const get = await fetch(`${gw.url}/mcp?client_id=query-client`, {
      headers: {
        accept: 'text/event-stream',
        'mcp-session-id': s.sessionId,
        'mcp-protocol-version': '2025-06-18',
      },
    });
    assert.equal(get.status, 200);
    await get.body?.cancel();
    // Another name, or none, is another client: the session is not theirs.
    assert.equal(
      (await postPing(gw.url, s.sessionId, 'q2', undefined, '/mcp?client_id=someone-else')).status,
      404,
    );
    assert.equal((await postPing(gw.url, s.sessionId, 'q3')).status, 404);
  });

  test('initialize with ?client_id= creates the session for that client; DELETE needs the same name', async () => {
    const init = await fetch(`${gw.url}/mcp?client_id=named-by-query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: INIT,
    });
    assert.equal(init.status, 200);
    const sessionId = init.headers.get('mcp-session-id')!;
    assert.equal(gw.gateway.app.get(SessionService).get(sessionId)?.clientId, 'named-by-query');
    const wrong = await fetch(`${gw.url}/mcp`, {
      method: 'DELETE',
      headers: { 'mcp-session-id': sessionId },
    });
    assert.equal(wrong.status, 404);
    const del = await fetch(`${gw.url}/mcp?client_id=named-by-query`, {
      method: 'DELETE',
      headers: { 'mcp-session-id': sessionId },
    });
    assert.equal(del.status, 200);
  });
});
