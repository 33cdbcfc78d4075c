/**
 * /metrics after a known workload: N tool calls per client transport through the official SDK
 * clients (embedded demo upstream), exact bytes of a raw call, refused requests (unknown
 * session, parse error), a transport failover (a Streamable HTTP session continued over legacy
 * SSE) and breakers forced open through S3. Every counter and histogram count is checked
 * exactly, the exposition passes `promtool check metrics`, and the admin token guards it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { Router } from '../src/routing/router.service';
import { VsmChannel, type AlgedonicEvent, type S3Event } from '../src/vsm/vsm.channels';
import { CLIENT_TRANSPORTS, connectClient } from './helpers/clients';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { parsePromText, promtoolCheckMetrics, sampleValue, type PromSample } from './helpers/prom-text';
import { openSession, raw, sessionHeaders } from './helpers/streamable-http-client';

const VERSION = '2025-11-25';
const N = 3;
const ADMIN_TOKEN = 'metrics-test-admin-token-0123456789';
const OPERATION = 'mcp_server_operation_duration_seconds';

async function scrape(
  base: string,
  token: string | undefined = ADMIN_TOKEN,
): Promise<{ text: string; samples: PromSample[] }> {
  const res = await fetch(`${base}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { text, samples: parsePromText(text) };
}

/** The JSON-RPC text of a Streamable HTTP POST answer, JSON or one SSE `data:` event. */
function answerText(res: { headers: Record<string, unknown>; text: string }): string {
  if (String(res.headers['content-type']).startsWith('application/json')) return res.text;
  const data = res.text
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => l.slice('data: '.length))
    .filter((d) => d !== '');
  assert.equal(data.length, 1, `one message on the stream: ${res.text}`);
  return data[0];
}

describe('/metrics after a known workload', () => {
  let gw: RunningGateway;
  let emitter: EventEmitter2;
  const clients: Client[] = [];
  const algedonic: AlgedonicEvent[] = [];

  before(async () => {
    gw = await startGateway({ admin: { token: ADMIN_TOKEN } });
    emitter = gw.gateway.app.get(EventEmitter2);
    emitter.on(VsmChannel.Algedonic, (e: AlgedonicEvent) => algedonic.push(e));
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await gw?.close();
  });

  test('the admin token guards /metrics when one is set', async () => {
    const none = await fetch(`${gw.url}/metrics`);
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer /);
    const wrong = await fetch(`${gw.url}/metrics`, {
      headers: { authorization: 'Bearer wrong-token-wrong-token' },
    });
    assert.equal(wrong.status, 401);
  });

  test('N calls per transport: sessions, connections, messages and latency histograms', async () => {
    for (const transport of CLIENT_TRANSPORTS) {
      const { client } = await connectClient(gw.url, transport);
      clients.push(client);
      const tools = await client.listTools();
      assert.ok(tools.tools.some((t) => t.name === 'echo'));
      for (let i = 0; i < N; i++) {
        const r = (await client.callTool({ name: 'echo', arguments: { text: `héllo ✓ ${i}` } })) as {
          content: Array<{ text: string }>;
        };
        assert.equal(r.content[0].text, `héllo ✓ ${i}`);
      }
    }
    const { samples } = await scrape(gw.url);
    const v = (name: string, labels?: Record<string, string>) => sampleValue(samples, name, labels);
    for (const transport of CLIENT_TRANSPORTS) {
      assert.equal(v('mcp_gateway_sessions', { transport }), 1, `${transport}: one session`);
      assert.equal(v('mcp_gateway_connections', { transport }), 1, `${transport}: one connection`);
      // In: initialize, notifications/initialized, tools/list, N tools/call. Out: their N + 2 answers.
      assert.equal(v('mcp_gateway_messages_total', { transport, direction: 'in' }), N + 3, `${transport} in`);
      assert.equal(
        v('mcp_gateway_messages_total', { transport, direction: 'out' }),
        N + 2,
        `${transport} out`,
      );
      assert.ok(v('mcp_gateway_message_bytes_total', { transport, direction: 'in' })! > 0);
      assert.ok(v('mcp_gateway_message_bytes_total', { transport, direction: 'out' })! > 0);
    }
    const count = (labels: Record<string, string>) => v(`${OPERATION}_count`, labels);
    assert.equal(count({ mcp_method_name: 'initialize' }), 3);
    assert.equal(count({ mcp_method_name: 'tools/list' }), 3);
    assert.equal(count({ mcp_method_name: 'tools/call', gen_ai_tool_name: 'echo' }), 3 * N);
    assert.equal(count({ mcp_method_name: 'tools/call', gen_ai_tool_name: 'other' }), undefined);
    assert.equal(count({ mcp_method_name: 'tools/call' }), undefined, 'tools/call only by tool');
    assert.equal(count({ mcp_method_name: 'ping' }), undefined, 'no series for a method never seen');
    assert.equal(
      v(`${OPERATION}_bucket`, { mcp_method_name: 'tools/call', gen_ai_tool_name: 'echo', le: '+Inf' }),
      3 * N,
    );
    const all = 3 * (N + 2);
    assert.equal(v('mcp_gateway_request_duration_seconds_count'), all);
    assert.equal(v('mcp_gateway_request_duration_seconds_bucket', { le: '+Inf' }), all);
    const [replica] = gw.gateway.app.get(Router).replicaIds('demo');
    assert.equal(v('mcp_gateway_upstream_duration_seconds_count', { replica }), all);
    // Buckets are cumulative.
    const buckets = samples.filter((s) => s.name === 'mcp_gateway_request_duration_seconds_bucket');
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value);
    // S1 sees every client message (nobody listens here, so it is counted without a payload).
    assert.equal(v('mcp_gateway_vsm_events_total', { channel: 's1_operations' }), 3 * (N + 3));
    assert.equal(v('mcp_gateway_breaker_state', { replica }), 0);
    // Node's default process metrics are there too.
    assert.ok(v('process_cpu_user_seconds_total')! > 0);
    assert.ok(v('nodejs_eventloop_lag_seconds') !== undefined);
  });

  test('bytes are UTF-8 bytes of the messages, counted exactly', async () => {
    const sessionId = await openSession(gw.url, VERSION);
    const before = (await scrape(gw.url)).samples;
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name: 'echo', arguments: { text: 'ünïcödé ✓ — 日本語' } },
    });
    const res = await raw(gw.url, { headers: sessionHeaders(sessionId, VERSION), body });
    assert.equal(res.status, 200);
    const answer = answerText(res);
    assert.equal(JSON.parse(answer).result.content[0].text, 'ünïcödé ✓ — 日本語');
    const after = (await scrape(gw.url)).samples;
    const delta = (direction: string) =>
      sampleValue(after, 'mcp_gateway_message_bytes_total', { transport: 'streamable', direction })! -
      sampleValue(before, 'mcp_gateway_message_bytes_total', { transport: 'streamable', direction })!;
    assert.ok(Buffer.byteLength(body) > body.length, 'the body has multi-byte characters');
    assert.equal(delta('in'), Buffer.byteLength(body));
    assert.equal(delta('out'), Buffer.byteLength(answer));
  });

  test('refused requests, a transport failover and breakers forced open are counted', async () => {
    const unknown = await raw(gw.url, {
      headers: sessionHeaders('no-such-session', VERSION),
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    assert.equal(unknown.status, 404);
    const sessionId = await openSession(gw.url, VERSION);
    const garbled = await raw(gw.url, {
      headers: sessionHeaders(sessionId, VERSION),
      body: '{"jsonrpc": "2.0", "id": 1,',
    });
    assert.equal(garbled.status, 400);
    // The same session continued over legacy SSE: a transport switch S2 allows.
    const moved = await fetch(`${gw.url}/messages?sessionId=${sessionId}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
    });
    assert.equal(moved.status, 202, await moved.text());

    const [replica] = gw.gateway.app.get(Router).replicaIds('demo');
    const s3 = (event: S3Event) => emitter.emit(VsmChannel.S3Control, event);
    s3({ type: 'force_circuit_state', transport: replica, state: 'open' });
    s3({ type: 'force_circuit_state', transport: 'ws', state: 'open' });

    const { text, samples } = await scrape(gw.url);
    const v = (name: string, labels?: Record<string, string>) => sampleValue(samples, name, labels);
    assert.equal(v('mcp_gateway_errors_total', { kind: 'session_not_found' }), 1);
    assert.equal(v('mcp_gateway_errors_total', { kind: 'parse_error' }), 1);
    assert.equal(v('mcp_gateway_transport_failovers_total', { from: 'streamable', to: 'sse' }), 1);
    assert.equal(v('mcp_gateway_vsm_events_total', { channel: 's2_coordination' }), 1);
    assert.equal(v('mcp_gateway_breaker_state', { replica }), 2);
    assert.equal(v('mcp_gateway_transport_breaker_state', { transport: 'ws' }), 2);
    assert.equal(v('mcp_gateway_transport_breaker_state', { transport: 'sse' }), 0);
    assert.equal(v('mcp_gateway_vsm_commands_received_total', { channel: 's3_control' }), 2);
    // Each breaker that opened raised one pain signal on the algedonic channel.
    assert.equal(algedonic.filter((e) => e.type === 'pain').length, 2);
    assert.equal(v('mcp_gateway_vsm_events_total', { channel: 'algedonic' }), 2);
    assert.equal(v('mcp_gateway_sessions', { transport: 'sse' }), 2, 'the SDK one and the moved one');

    // The exposition parses, and lint finds nothing in the gateway's metrics. The only complaints
    // allowed are about three of prom-client's default gauges whose names end in _total.
    const check = promtoolCheckMetrics(text);
    const complaints = check.output.split('\n').filter((l) => l !== '');
    const known =
      /^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/;
    assert.deepEqual(
      complaints.filter((l) => !known.test(l)),
      [],
      `promtool check metrics (exit ${check.status}): ${check.output}`,
    );
    const gatewayOnly = text
      .split('\n')
      .filter((l) => /^(# (HELP|TYPE) )?mcp_/.test(l))
      .join('\n');
    const strict = promtoolCheckMetrics(`${gatewayOnly}\n`);
    assert.equal(strict.status, 0, `promtool check metrics on the gateway's metrics: ${strict.output}`);
    assert.equal(strict.output, '');

    s3({ type: 'force_circuit_state', transport: replica, state: 'auto' });
    s3({ type: 'force_circuit_state', transport: 'ws', state: 'auto' });
    const later = (await scrape(gw.url)).samples;
    assert.equal(sampleValue(later, 'mcp_gateway_breaker_state', { replica }), 0);
    assert.equal(sampleValue(later, 'mcp_gateway_transport_breaker_state', { transport: 'ws' }), 0);
  });
});

describe('/metrics after a replica failover', () => {
  test('the session moves off a replica whose breaker opened: counted once, from → to', async () => {
    const gw = await startGateway({
      defaultService: 'demo',
      services: {
        demo: {
          replicas: [
            { transport: 'embedded', server: 'demo' },
            { transport: 'embedded', server: 'demo' },
          ],
        },
      },
    });
    const { client } = await connectClient(gw.url, 'ws');
    try {
      // tools/list tells the gateway echo is read-only, so a call held up by the move may be sent again.
      await client.listTools();
      await client.callTool({ name: 'echo', arguments: { text: 'one' } });
      const first = (await scrape(gw.url, undefined)).samples;
      // initialize, tools/list and the call went to the session's replica, nothing to the other one.
      const latency = first.filter((s) => s.name === 'mcp_gateway_upstream_duration_seconds_count');
      assert.deepEqual(
        latency.map((s) => s.value),
        [3],
      );
      const from = latency[0].labels.replica;
      const to = gw.gateway.app
        .get(Router)
        .replicaIds('demo')
        .find((id) => id !== from)!;
      gw.gateway.app.get(EventEmitter2).emit(VsmChannel.S3Control, {
        type: 'force_circuit_state',
        transport: from,
        state: 'open',
      } satisfies S3Event);
      const r = (await client.callTool({ name: 'echo', arguments: { text: 'two' } })) as {
        content: Array<{ text: string }>;
      };
      assert.equal(r.content[0].text, 'two');
      const { samples } = await scrape(gw.url, undefined);
      assert.equal(sampleValue(samples, 'mcp_gateway_replica_failovers_total', { from, to }), 1);
      assert.equal(samples.filter((s) => s.name === 'mcp_gateway_replica_failovers_total').length, 1);
      assert.equal(sampleValue(samples, 'mcp_gateway_breaker_state', { replica: from }), 2);
      assert.equal(sampleValue(samples, 'mcp_gateway_upstream_duration_seconds_count', { replica: from }), 3);
      // The replayed handshake is the gateway's own; only the client's call counts on the new replica.
      assert.equal(sampleValue(samples, 'mcp_gateway_upstream_duration_seconds_count', { replica: to }), 1);
      assert.equal(sampleValue(samples, 'mcp_gateway_request_duration_seconds_count'), 4);
    } finally {
      await client.close();
      await gw.close();
    }
  });
});

describe('/metrics without an admin token', () => {
  test('is open', async () => {
    const gw = await startGateway();
    try {
      const res = await fetch(`${gw.url}/metrics`);
      assert.equal(res.status, 200);
      const samples = parsePromText(await res.text());
      assert.equal(sampleValue(samples, 'mcp_gateway_sessions', { transport: 'ws' }), 0);
    } finally {
      await gw.close();
    }
  });
});
