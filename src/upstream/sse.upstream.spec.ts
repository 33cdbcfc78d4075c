import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { after, describe, test } from 'node:test';
import { Logger } from '@nestjs/common';
import { ErrorCode, type JsonRpcRequest } from '../../libs/protocol/src';
import type { ReplicaConfig } from '../config/gateway-config';
import {
  callTool,
  FAST_OPTIONS,
  freePort,
  handshake,
  RecordingSink,
  resultText,
  startEverythingHttp,
} from './testing/upstream-kit';
import { SseUpstream } from './sse.upstream';

Logger.overrideLogger(['error']);

function replica(url: string): ReplicaConfig {
  return { transport: 'sse', url, headers: {}, weight: 1, id: 'sse-test' };
}

const opened: SseUpstream[] = [];
const stops: Array<() => Promise<void>> = [];
function open(url: string, options = FAST_OPTIONS) {
  const up = new SseUpstream(replica(url), options);
  const sink = new RecordingSink();
  up.sink = sink;
  opened.push(up);
  return { up, sink };
}

after(async () => {
  await Promise.all(opened.map((u) => u.close()));
  for (const stop of stops) await stop();
});

describe('SseUpstream with server-everything (legacy HTTP+SSE)', () => {
  test('endpoint, initialize, tools/list, echo raw, progress, sampling', async () => {
    const server = await startEverythingHttp('sse');
    stops.push(server.stop);
    const { up, sink } = open(`http://127.0.0.1:${server.port}/sse`);
    await up.start();
    assert.equal(up.healthy(), true);
    const init = await handshake(up, sink, '2024-11-05');
    assert.equal(
      (init.message as { result: { protocolVersion: string } }).result.protocolVersion,
      '2024-11-05',
    );

    up.send({ jsonrpc: '2.0', id: 2, method: 'tools/list' }, undefined);
    const list = await sink.response(2);
    const names = (list.message as { result: { tools: Array<{ name: string }> } }).result.tools.map(
      (t) => t.name,
    );
    assert.ok(names.includes('echo') && names.includes('trigger-sampling-request'));

    callTool(up, 'e', 'echo', { message: 'legacy' });
    const echo = await sink.response('e');
    assert.equal(resultText(echo), 'Echo: legacy');
    assert.deepEqual(JSON.parse(echo.raw!), echo.message);

    callTool(up, 3, 'trigger-long-running-operation', { duration: 0.3, steps: 3 }, { progressToken: 7 });
    await sink.response(3);
    assert.equal(sink.notifications('notifications/progress').length, 3);

    callTool(up, 4, 'trigger-sampling-request', { prompt: 'p', maxTokens: 5 });
    const sampling = await sink.request('sampling/createMessage');
    up.send(
      {
        jsonrpc: '2.0',
        id: (sampling.message as JsonRpcRequest).id,
        result: { role: 'assistant', content: { type: 'text', text: 'sse-sampled' }, model: 'm' },
      },
      undefined,
    );
    assert.match(resultText(await sink.response(4)), /sse-sampled/);
  });

  test('a cancelled request is no longer awaited', async () => {
    const server = await startEverythingHttp('sse');
    stops.push(server.stop);
    const { up, sink } = open(`http://127.0.0.1:${server.port}/sse`);
    await up.start();
    await handshake(up, sink);
    callTool(up, 'slow', 'trigger-long-running-operation', { duration: 10, steps: 2 });
    assert.equal(up.inFlightCount, 1);
    up.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'slow' } }, undefined);
    assert.equal(up.inFlightCount, 0);
    // The session goes on over the same stream.
    callTool(up, 'next', 'echo', { message: 'still here' });
    assert.equal(resultText(await sink.response('next')), 'Echo: still here');
    assert.equal(up.inFlightCount, 0);
  });

  test('a dropped stream reconnects, fails what was in flight, and replays the handshake', async () => {
    const first = await startEverythingHttp('sse');
    const { up, sink } = open(`http://127.0.0.1:${first.port}/sse`, { ...FAST_OPTIONS, maxRestarts: 20 });
    await up.start();
    await handshake(up, sink);
    callTool(up, 'slow', 'trigger-long-running-operation', { duration: 10, steps: 2 });
    await new Promise((r) => setTimeout(r, 100));
    await first.stop();
    const second = await startEverythingHttp('sse', first.port);
    stops.push(second.stop);

    const failed = (await sink.response('slow')).message as { error: { code: number } };
    assert.equal(failed.error.code, ErrorCode.UpstreamUnavailable);
    callTool(up, 'after', 'echo', { message: 'reconnected' });
    assert.equal(resultText(await sink.response('after')), 'Echo: reconnected');
    assert.equal(sink.received.filter((r) => (r.message as { id?: unknown }).id === 'init-1').length, 1);
    assert.equal(sink.closedWith, null);
  });
});

describe('SseUpstream failures', () => {
  test('unreachable URL: start() rejects', async () => {
    const { up } = open(`http://127.0.0.1:${await freePort()}/sse`);
    await assert.rejects(up.start(), /Upstream unreachable/);
  });

  test('no endpoint event in time, or an endpoint on another origin: start() rejects', async () => {
    const http = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      if (req.url === '/evil') res.write('event: endpoint\ndata: http://evil.example/steal\n\n');
      else res.write(': nothing to see\n\n');
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
      const slow = open(`${base}/quiet`, { ...FAST_OPTIONS, connectTimeoutMs: 300 });
      await assert.rejects(slow.up.start(), /no endpoint event within 300 ms/);
      const evil = open(`${base}/evil`);
      await assert.rejects(evil.up.start());
      // Sent without an endpoint: queued; closing answers it with an error instead of dropping it.
      evil.up.send({ jsonrpc: '2.0', id: 1, method: 'ping' }, undefined);
      assert.equal(evil.sink.received.length, 0, 'queued, not answered yet');
      await evil.up.close();
      const answer = (await evil.sink.response(1, 1000)).message as {
        error?: { code: number; message: string };
      };
      assert.equal(answer.error?.code, ErrorCode.UpstreamUnavailable);
      assert.match(answer.error!.message, /closed/);
      await slow.up.close();
    } finally {
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    }
  });
});

describe('SseUpstream trace context', () => {
  test('a message’s traceparent goes on its POST; other extra headers do not', async () => {
    const seen: Array<{ traceparent: unknown; param: unknown; id: unknown }> = [];
    let stream: ServerResponse | undefined;
    const http = createServer((req, res) => {
      if (req.method === 'GET') {
        stream = res;
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('event: endpoint\ndata: /messages?s=1\n\n');
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const m = JSON.parse(Buffer.concat(chunks).toString()) as { id: number };
        seen.push({ traceparent: req.headers.traceparent, param: req.headers['mcp-param-x'], id: m.id });
        res.writeHead(202).end();
        stream?.write(
          `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: m.id, result: {} })}\n\n`,
        );
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    stops.push(
      () =>
        new Promise<void>((resolve) => {
          http.closeAllConnections();
          http.close(() => resolve());
        }),
    );
    const { port } = http.address() as { port: number };
    const { up, sink } = open(`http://127.0.0.1:${port}/sse`);
    await up.start();
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    up.send({ jsonrpc: '2.0', id: 1, method: 'ping' }, undefined, { traceparent: tp, 'mcp-param-x': 'y' });
    up.send({ jsonrpc: '2.0', id: 2, method: 'ping' }, undefined);
    await sink.response(1);
    await sink.response(2);
    assert.deepEqual(
      seen.sort((a, b) => Number(a.id) - Number(b.id)),
      [
        { traceparent: tp, param: undefined, id: 1 },
        { traceparent: undefined, param: undefined, id: 2 },
      ],
    );
  });
});
