/**
 * Backpressure, inbound: past the per-session bound of requests in flight a client gets a
 * JSON-RPC error carrying retryAfterMs (WebSocket, SSE stream) or HTTP 429 + Retry-After
 * (HTTP POSTs); nothing is lost from what was accepted and the connection stays usable.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { ErrorCode } from '../libs/protocol/src';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { SessionService } from '../src/session/session.module';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { waitUntil } from './helpers/wait';

const MAX_IN_FLIGHT = 20;
const INIT_PARAMS = {
  protocolVersion: '2025-06-18',
  capabilities: {},
  clientInfo: { name: 'flood', version: '1' },
};
const longCall = (id: number | string) =>
  JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'long_task', arguments: { duration: 1, steps: 1 } },
  });

describe('inbound flood', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway({ session: { maxInFlight: MAX_IN_FLIGHT } });
  });
  after(() => gw.close());

  test('WebSocket: a flood of requests past the bound gets -31003 with retryAfterMs; accepted ones all complete', async () => {
    const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/ws`, 'mcp');
    const frames: any[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
    await new Promise<void>((ok, fail) => {
      ws.once('open', () => ok());
      ws.once('error', fail);
    });
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: INIT_PARAMS }));
    await waitUntil(() => frames.some((f) => f.id === 'init'), 10_000, 'the initialize answer');
    ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));

    const FLOOD = 500;
    for (let i = 0; i < FLOOD; i++) ws.send(longCall(i));
    await waitUntil(
      () => frames.filter((f) => typeof f.id === 'number').length === FLOOD,
      20_000,
      'an answer to every call of the flood',
    );
    const answers = frames.filter((f) => typeof f.id === 'number');
    const refused = answers.filter((f) => f.error?.code === ErrorCode.Overloaded);
    const done = answers.filter((f) => f.result);
    assert.equal(done.length, MAX_IN_FLIGHT, 'exactly the bound was accepted');
    assert.equal(refused.length, FLOOD - MAX_IN_FLIGHT);
    assert.ok(
      refused.every((f) => f.error.data.retryAfterMs > 0),
      'every refusal says when to retry',
    );
    assert.equal(new Set(answers.map((f) => f.id)).size, FLOOD, 'one answer per request');

    // Once the accepted ones are done the session takes requests again.
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 'after', method: 'tools/list' }));
    await waitUntil(() => frames.some((f) => f.id === 'after'), 10_000, 'the answer after the flood');
    assert.ok(frames.find((f) => f.id === 'after').result.tools.length > 0);
    ws.close(1000);
  });

  test('Streamable HTTP: a POST past the bound is answered 429 with Retry-After', async () => {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    };
    const init = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: INIT_PARAMS }),
    });
    const sessionId = init.headers.get('mcp-session-id')!;
    await init.text();
    const h = { ...headers, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' };
    await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: h,
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    const pending: Promise<Response>[] = [];
    for (let i = 1; i <= MAX_IN_FLIGHT; i++) {
      pending.push(fetch(`${gw.url}/mcp`, { method: 'POST', headers: h, body: longCall(i) }));
    }
    // Headers of a lazily chosen response only come with its first message: watch the session instead.
    const sessions = gw.gateway.app.get(SessionService);
    await waitUntil(
      () => sessions.get(sessionId)!.inFlightCount === MAX_IN_FLIGHT,
      10_000,
      'the session to reach its in-flight limit',
    );
    const refused = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: h,
      body: longCall('one-too-many'),
    });
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    const body = (await refused.json()) as any;
    assert.equal(body.id, 'one-too-many');
    assert.equal(body.error.code, ErrorCode.Overloaded);
    assert.ok(body.error.data.retryAfterMs > 0);
    const firstBatch = await Promise.all(pending);
    assert.ok(firstBatch.every((r) => r.status === 200));
    const texts = await Promise.all(firstBatch.map((r) => r.text()));
    assert.ok(
      texts.every((t) => t.includes('"result"')),
      'the accepted requests all completed',
    );
    assert.ok((gw.gateway.app.get(GatewayMetrics).errors.get('overloaded') ?? 0) >= 1);
  });
});
