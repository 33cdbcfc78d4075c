import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import type { JsonRpcRequest } from '../../../libs/protocol/src';
import { abortRequestTrace, endRequestTrace, startRequestTrace, type TracedSession } from './mcp-spans';
import { Tracing } from './tracing';

// The span functions on their own, with a small fake session; how a real Session uses them is
// test/mcp-spans.test.ts (a telemetry spec may only use what telemetry may import).

function fakeSession(incoming?: TracedSession['incoming']): TracedSession {
  return {
    id: 'sess-1',
    protocolVersion: '2025-06-18',
    transport: 'ws',
    incoming,
    upstreamTarget: () => ({ transport: 'ws', url: 'ws://10.0.0.7:9100/ws' }),
  };
}

describe('startRequestTrace / endRequestTrace / abortRequestTrace', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  before(() => {
    Tracing.tracer = provider.getTracer('test');
    Tracing.enabled = true;
  });
  after(async () => {
    Tracing.enabled = false;
    Tracing.tracer = trace.getTracer('mcp-gateway');
    await provider.shutdown();
  });

  test('a sampled request: SERVER and CLIENT spans, the CLIENT span named in _meta, the text and headers', () => {
    exporter.reset();
    const text = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","_meta":{"k":1}}}';
    const message = JSON.parse(text) as JsonRpcRequest;
    const started = startRequestTrace(fakeSession(), message, text, undefined);
    assert.ok(started.trace, 'sampled');
    const { server, client } = started.trace;
    const meta = (message.params as { _meta: Record<string, unknown> })._meta;
    const sc = client.spanContext();
    assert.equal(meta.traceparent, `00-${sc.traceId}-${sc.spanId}-01`);
    assert.equal(meta.k, 1, 'other _meta fields are kept');
    assert.equal(started.headers?.traceparent, meta.traceparent);
    assert.deepEqual(JSON.parse(started.raw!), message, 'the text says what the message says');
    endRequestTrace(started.trace, { jsonrpc: '2.0', id: 7, error: { code: -32001, message: 'late' } });
    const spans = exporter.getFinishedSpans();
    assert.deepEqual(
      spans.map((s) => [s.name, s.kind, s.attributes['error.type'], s.status.code]),
      [
        ['tools/call echo', SpanKind.CLIENT, '-32001', SpanStatusCode.ERROR],
        ['tools/call echo', SpanKind.SERVER, '-32001', SpanStatusCode.ERROR],
      ],
    );
    assert.equal(spans[0]!.parentSpanContext?.spanId, server.spanContext().spanId);
    assert.equal(spans[1]!.attributes['gen_ai.tool.name'], 'echo');
    assert.equal(spans[1]!.attributes['network.protocol.name'], 'websocket');
  });

  test('a caller context from the HTTP request parents the SERVER span; an abort ends both', () => {
    exporter.reset();
    const caller = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const message: JsonRpcRequest = { jsonrpc: '2.0', id: 1, method: 'tools/list' };
    const started = startRequestTrace(fakeSession({ traceparent: caller }), message, undefined, undefined);
    assert.ok(started.trace);
    assert.equal(started.trace.server.spanContext().traceId, '0af7651916cd43dd8448eb211c80319c');
    abortRequestTrace(started.trace, 'cancelled');
    const server = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.SERVER)!;
    assert.equal(server.parentSpanContext?.spanId, 'b7ad6b7169203331');
    assert.equal(server.attributes['error.type'], 'cancelled');
  });
});
