/** The WebSocket upstream against a real MCP server over ws (moved from src/upstream: it starts a server fixture from test/). */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Logger } from '@nestjs/common';
import { ErrorCode } from '../libs/protocol/src';
import type { ReplicaConfig } from '../src/config/gateway-config';
import { startWsMcpServer, type WsMcpServer } from './fixtures/ws-mcp-server';
import {
  callTool,
  FAST_OPTIONS,
  freePort,
  handshake,
  RecordingSink,
  resultText,
  waitUntil,
} from './helpers/upstream-test-kit';
import type { UpstreamOptions } from '../src/upstream/upstream-options';
import { WsUpstream } from '../src/upstream/ws.upstream';

Logger.overrideLogger(['error']);

function replica(url: string): ReplicaConfig {
  return { transport: 'ws', url, headers: { 'x-test': 'yes' }, weight: 1, id: 'ws-test' };
}

const opened: WsUpstream[] = [];
const servers: WsMcpServer[] = [];
function open(url: string, options: UpstreamOptions = FAST_OPTIONS) {
  const up = new WsUpstream(replica(url), options);
  const sink = new RecordingSink();
  up.sink = sink;
  opened.push(up);
  return { up, sink };
}

async function server(): Promise<WsMcpServer> {
  const s = await startWsMcpServer();
  servers.push(s);
  return s;
}

after(async () => {
  await Promise.all(opened.map((u) => u.close()));
  await Promise.all(servers.map((s) => s.close()));
});

const errorOf = (r: { message: unknown }) =>
  (r.message as { error?: { code: number; message: string } }).error;

describe('WsUpstream with an SDK server over WebSocket', () => {
  test('upgrade with subprotocol mcp and the replica headers; initialize, tools/list, echo raw', async () => {
    const srv = await server();
    const { up, sink } = open(srv.url);
    await up.start();
    assert.equal(up.healthy(), true);
    assert.equal(srv.upgrades[0].protocol, 'mcp');
    assert.equal(srv.upgrades[0].headers['x-test'], 'yes');
    await handshake(up, sink);
    up.send({ jsonrpc: '2.0', id: 2, method: 'tools/list' }, undefined);
    const list = (await sink.response(2)).message as { result: { tools: Array<{ name: string }> } };
    assert.deepEqual(list.result.tools.map((t) => t.name).sort(), ['big', 'echo', 'hold']);
    callTool(up, 'e', 'echo', { text: 'über ws' });
    const echo = await sink.response('e');
    assert.equal(resultText(echo), 'über ws');
    assert.deepEqual(JSON.parse(echo.raw!), echo.message, 'raw is the frame text');
    assert.equal(up.inFlightCount, 0);
  });

  test('the first connection failing rejects start() and answers what was sent meanwhile', async () => {
    const { up, sink } = open(`ws://127.0.0.1:${await freePort()}/mcp`);
    callTool(up, 1, 'echo', { text: 'x' });
    await assert.rejects(up.start(), /Upstream unreachable/);
    const error = errorOf(await sink.response(1));
    assert.equal(error?.code, ErrorCode.UpstreamUnavailable);
    assert.match(error!.message, /^Upstream unreachable: /);
  });

  test('a dropped connection fails what was in flight, reconnects and replays the handshake', async () => {
    const srv = await server();
    const { up, sink } = open(srv.url, { ...FAST_OPTIONS, maxRestarts: 10 });
    await up.start();
    await handshake(up, sink);
    callTool(up, 'slow', 'hold', { ms: 10_000 });
    await waitUntil(() => srv.received[0].some((m) => m.id === 'slow'), 5000, 'the call to arrive');
    assert.equal(up.inFlightCount, 1);
    srv.sockets[0].terminate();

    const failed = errorOf(await sink.response('slow'));
    assert.equal(failed?.code, ErrorCode.UpstreamUnavailable);
    assert.match(failed!.message, /WebSocket/);
    assert.equal(up.inFlightCount, 0);
    // Sent while reconnecting: held until the new connection has the client's handshake.
    callTool(up, 'after', 'echo', { text: 'again' });
    assert.equal(resultText(await sink.response('after')), 'again');
    assert.equal(srv.upgrades.length, 2);
    assert.deepEqual(
      srv.received[1].map((m) => m.method),
      ['initialize', 'notifications/initialized', 'tools/call'],
      'the handshake is replayed before anything else',
    );
    assert.equal(
      sink.received.filter((r) => (r.message as { id?: unknown }).id === 'init-1').length,
      1,
      'the replayed initialize answer is swallowed',
    );
    assert.equal(sink.closedWith, null);
  });

  test('an upstream gone for good: reconnects give up, waiting requests fail, the sink is told', async () => {
    const srv = await startWsMcpServer();
    const { up, sink } = open(srv.url, { ...FAST_OPTIONS, retryMinMs: 20, retryMaxMs: 40, maxRestarts: 2 });
    await up.start();
    await handshake(up, sink);
    await srv.close();
    await waitUntil(() => !up.healthy(), 5000, 'the connection to be lost');
    callTool(up, 'late', 'echo', { text: 'nobody home' });
    const failed = errorOf(await sink.response('late'));
    assert.equal(failed?.code, ErrorCode.UpstreamUnavailable);
    assert.match(failed!.message, /gave up after 2 reconnects/);
    await waitUntil(() => sink.closedWith !== null, 5000, 'upstreamClosed');
    assert.match(String(sink.closedWith?.message), /gave up/);
  });

  test('a cancelled request is forgotten and the cancel reaches the server', async () => {
    const srv = await server();
    const { up, sink } = open(srv.url);
    await up.start();
    await handshake(up, sink);
    callTool(up, 'c', 'hold', { ms: 10_000 });
    assert.equal(up.inFlightCount, 1);
    await waitUntil(() => srv.received[0].some((m) => m.id === 'c'), 5000, 'the call to arrive');
    up.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'c' } }, undefined);
    assert.equal(up.inFlightCount, 0);
    await waitUntil(() => srv.cancelled.includes('c'), 5000, 'the server to cancel the call');
  });

  test('a peer that stops answering pings is reconnected (one shared heartbeat timer)', async () => {
    const srv = await server();
    const { up, sink } = open(srv.url, { ...FAST_OPTIONS, wsHeartbeatIntervalMs: 100, maxRestarts: 10 });
    await up.start();
    await handshake(up, sink);
    srv.sockets[0].pause(); // reads nothing, so answers no ping
    await waitUntil(() => srv.upgrades.length === 2, 5000, 'a new connection');
    callTool(up, 'alive', 'echo', { text: 'after heartbeat' });
    assert.equal(resultText(await sink.response('alive')), 'after heartbeat');
  });
});

describe('WsUpstream backpressure', () => {
  test('pause() stops reading: the server is pushed back, and resume() delivers everything', async () => {
    const srv = await server();
    const { up, sink } = open(srv.url);
    await up.start();
    await handshake(up, sink);
    up.pause();
    const ids = ['b1', 'b2', 'b3', 'b4'];
    for (const id of ids) callTool(up, id, 'big', { bytes: 4 * 1024 * 1024 });
    // The server's answers pile up in its own send buffer once TCP's windows are full.
    await waitUntil(() => (srv.sockets[0]?.bufferedAmount ?? 0) > 0, 10_000, 'the server to be pushed back');
    const delivered = sink.received.filter((r) => ids.includes((r.message as { id: string }).id));
    assert.equal(delivered.length, 0, 'nothing is delivered while paused');
    up.resume();
    for (const id of ids) assert.equal(resultText(await sink.response(id)).length, 4 * 1024 * 1024);
  });

  test('sends wait while the socket holds more than the high-water mark, in order, and all arrive', async () => {
    const srv = await server();
    const highWater = 64 * 1024;
    const { up, sink } = open(srv.url, { ...FAST_OPTIONS, wsHighWaterMarkBytes: highWater });
    await up.start();
    await handshake(up, sink);
    srv.sockets[0].pause(); // the server stops reading
    const size = 512 * 1024;
    const count = 28;
    const text = 'y'.repeat(size);
    let maxBuffered = 0;
    for (let i = 0; i < count; i++) {
      callTool(up, `s${i}`, 'echo', { text });
      maxBuffered = Math.max(maxBuffered, up.bufferedAmount);
    }
    await waitUntil(() => up.heldCount > 0, 10_000, 'sends to be held');
    maxBuffered = Math.max(maxBuffered, up.bufferedAmount);
    // Every write checks the mark first, so at most one message sits above it.
    assert.ok(maxBuffered <= highWater + size + 1024, `buffered ${maxBuffered} bytes`);
    srv.sockets[0].resume();
    for (let i = 0; i < count; i++) assert.equal(resultText(await sink.response(`s${i}`)).length, size);
    assert.deepEqual(
      srv.received[0].filter((m) => m.method === 'tools/call').map((m) => m.id),
      Array.from({ length: count }, (_, i) => `s${i}`),
      'in the order sent',
    );
    assert.equal(up.heldCount, 0);
  });
});

describe('WsUpstream bad frames', () => {
  test('malformed and binary frames are dropped; the connection goes on', async () => {
    const srv = await server();
    const { up, sink } = open(srv.url);
    await up.start();
    await handshake(up, sink);
    const before = sink.received.length;
    srv.sockets[0].send('this is not json');
    srv.sockets[0].send('{"jsonrpc":"2.0","id":{"bad":true},"result":{}}');
    srv.sockets[0].send(Buffer.from('{"jsonrpc":"2.0","method":"x"}'), { binary: true });
    callTool(up, 'ok', 'echo', { text: 'still fine' });
    assert.equal(resultText(await sink.response('ok')), 'still fine');
    assert.equal(sink.received.length, before + 1, 'only the answer was delivered');
    assert.equal(srv.upgrades.length, 1, 'same connection');
  });

  test('an oversize frame closes the connection (1009): the request fails, the next works', async () => {
    const srv = await server();
    const { up, sink } = open(srv.url, { ...FAST_OPTIONS, wsMaxFrameBytes: 64 * 1024, maxRestarts: 10 });
    await up.start();
    await handshake(up, sink);
    callTool(up, 'huge', 'big', { bytes: 256 * 1024 });
    const failed = errorOf(await sink.response('huge'));
    assert.equal(failed?.code, ErrorCode.UpstreamUnavailable);
    callTool(up, 'next', 'echo', { text: 'after the big one' });
    assert.equal(resultText(await sink.response('next')), 'after the big one');
    assert.equal(srv.upgrades.length, 2, 'a new connection was opened');
  });
});
