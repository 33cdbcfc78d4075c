// Request spans as a Session makes them: a server suite, since it drives the session layer (the
// telemetry layer's own specs may use only core, config and libs).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  type Sampler,
} from '@opentelemetry/sdk-trace-base';
import { ErrorCode, type JsonRpcMessage } from '../libs/protocol/src';
import type { UpstreamPort } from '../src/pool/upstream-port';
import type { ClientChannel, ChannelListener } from '../src/session/client-channel';
import { Session, STANDALONE_STREAM } from '../src/session/session';
import type { MessageHeaders, UpstreamSink } from '../src/upstream/upstream-connection';
import { Tracing } from '../src/telemetry/tracing/tracing';

/** What the session hands its upstream port: messages, their raw text and headers. */
class RecordingPort implements UpstreamPort {
  sink: UpstreamSink | undefined = undefined;
  sent: Array<{ message: any; raw: string | undefined; headers: MessageHeaders | undefined }> = [];
  send(message: JsonRpcMessage, raw: string | undefined, headers?: MessageHeaders): void {
    this.sent.push({ message, raw, headers });
  }
  target() {
    return { transport: 'ws' as const, url: 'ws://10.0.0.7:9100/ws' };
  }
  pause(): void {}
  resume(): void {}
  close(): void {}
}

class Channel implements ClientChannel {
  readonly kind = 'ws' as const;
  listener: ChannelListener | undefined = undefined;
  closed = false;
  bufferedBytes = 0;
  send(): boolean {
    return true;
  }
  end(): void {
    this.closed = true;
  }
  close(): void {
    this.closed = true;
  }
}

function newSession(): { session: Session; port: RecordingPort } {
  const session = new Session({
    id: 'sess-1',
    clientId: 'c1',
    service: 'demo',
    transport: 'ws',
    outbox: { maxMessages: 100, maxBytes: 100_000 },
    maxInFlight: 10,
    dedupeWindow: 10,
    dedupeWindowMs: 60_000,
    hooks: { clientMessage() {}, upstreamMessage() {}, sessionClosed() {}, overflow() {}, backpressure() {} },
  });
  session.attachPrimary(new Channel(), undefined);
  const port = new RecordingPort();
  session.useUpstream(port);
  return { session, port };
}

/** Tracing on for the enclosing describe, into an in-memory exporter; off again after it. */
function tracingFor(sampler?: Sampler): InMemorySpanExporter {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ sampler, spanProcessors: [new SimpleSpanProcessor(exporter)] });
  before(() => {
    Tracing.tracer = provider.getTracer('test');
    Tracing.enabled = true;
  });
  after(async () => {
    Tracing.enabled = false;
    Tracing.tracer = trace.getTracer('mcp-gateway');
    await provider.shutdown();
  });
  return exporter;
}

describe('request spans on a session', () => {
  const exporter = tracingFor();

  test('the upstream gets the CLIENT span in _meta (spliced into the text) and headers; an answer ends both spans', () => {
    exporter.reset();
    const { session, port } = newSession();
    const text = '{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"greet","_meta":{"k":1}}}';
    session.receive(JSON.parse(text) as JsonRpcMessage, text, STANDALONE_STREAM);
    const [sent] = port.sent;
    assert.equal(sent!.message.params._meta.k, 1, 'other _meta fields are kept');
    assert.equal(sent!.headers?.traceparent, sent!.message.params._meta.traceparent);
    assert.deepEqual(JSON.parse(sent!.raw!), sent!.message, 'the text says what the message says');
    assert.equal(exporter.getFinishedSpans().length, 0, 'open until answered');
    port.sink!.upstreamMessage({ jsonrpc: '2.0', id: 1, result: { messages: [] } }, undefined, undefined);
    const spans = exporter.getFinishedSpans();
    assert.deepEqual(
      spans.map((s) => [s.name, s.kind]),
      [
        ['prompts/get greet', SpanKind.CLIENT],
        ['prompts/get greet', SpanKind.SERVER],
      ],
    );
    const [client, server] = spans;
    assert.equal(
      sent!.message.params._meta.traceparent,
      `00-${client!.spanContext().traceId}-${client!.spanContext().spanId}-01`,
    );
    assert.equal(client!.parentSpanContext?.spanId, server!.spanContext().spanId);
    assert.equal(server!.attributes['gen_ai.prompt.name'], 'greet');
    assert.equal(server!.attributes['network.protocol.name'], 'websocket');
    assert.deepEqual(
      [
        client!.attributes['server.address'],
        client!.attributes['server.port'],
        client!.attributes['network.protocol.name'],
      ],
      ['10.0.0.7', 9100, 'websocket'],
    );
  });

  test('a cancelled request and a closed session end their spans with error.type', () => {
    exporter.reset();
    const { session } = newSession();
    session.receive({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'slow' } }, undefined, 0);
    session.receive(
      { jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: 'file:///a' } },
      undefined,
      0,
    );
    session.receive(
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } },
      undefined,
      0,
    );
    session.close('test');
    const byType = exporter
      .getFinishedSpans()
      .filter((s) => s.kind === SpanKind.SERVER)
      .map((s) => [s.name, s.attributes['error.type'], s.status.code, s.attributes['mcp.resource.uri']]);
    assert.deepEqual(byType, [
      ['tools/call slow', 'cancelled', SpanStatusCode.ERROR, undefined],
      ['resources/read', 'session_closed', SpanStatusCode.ERROR, 'file:///a'],
    ]);
  });

  test('an error answer from the gateway itself (upstream timeout) marks the spans with its code', () => {
    exporter.reset();
    const { session } = newSession();
    session.receive({ jsonrpc: '2.0', id: 'a', method: 'tools/list' }, undefined, 0);
    session.expireRequests(Date.now() + 60_000, 1000);
    const server = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.SERVER)!;
    assert.equal(server.attributes['error.type'], String(ErrorCode.UpstreamTimeout));
    assert.equal(server.attributes['jsonrpc.request.id'], 'a');
  });

  test('with tracing off the message and its text pass untouched', () => {
    Tracing.enabled = false;
    try {
      const { session, port } = newSession();
      const text = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}';
      session.receive(JSON.parse(text) as JsonRpcMessage, text, STANDALONE_STREAM);
      assert.equal(port.sent[0]!.raw, text);
      assert.equal(port.sent[0]!.headers, undefined);
      assert.equal(port.sent[0]!.message.params, undefined);
    } finally {
      Tracing.enabled = true;
    }
  });
});

describe('request spans when the gateway does not sample', () => {
  const exporter = tracingFor(new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0) }));

  test('no caller context: nothing recorded, the text and headers pass untouched', () => {
    const { session, port } = newSession();
    const text = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}';
    session.receive(JSON.parse(text) as JsonRpcMessage, text, STANDALONE_STREAM);
    port.sink!.upstreamMessage({ jsonrpc: '2.0', id: 1, result: {} }, undefined, undefined);
    assert.equal(port.sent[0]!.raw, text);
    assert.equal(port.sent[0]!.headers, undefined);
    assert.equal(exporter.getFinishedSpans().length, 0);
  });

  test('an unsampled caller in _meta: forwarded byte for byte, the same context as header', () => {
    const { session, port } = newSession();
    const caller = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';
    const text = `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"traceparent":"${caller}"}}}`;
    session.receive(JSON.parse(text) as JsonRpcMessage, text, STANDALONE_STREAM);
    assert.equal(port.sent[0]!.raw, text);
    assert.equal(port.sent[0]!.headers?.traceparent, caller);
    assert.equal(exporter.getFinishedSpans().length, 0);
  });

  test('an unsampled caller in the HTTP request: copied into _meta so every upstream stays in its trace', () => {
    const { session, port } = newSession();
    const caller = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';
    session.incoming = { traceparent: caller, tracestate: 'v=1' };
    const text = '{"jsonrpc":"2.0","id":3,"method":"tools/list"}';
    session.receive(JSON.parse(text) as JsonRpcMessage, text, STANDALONE_STREAM);
    const sent = port.sent[0]!;
    assert.deepEqual(JSON.parse(sent.raw!).params._meta, { traceparent: caller, tracestate: 'v=1' });
    assert.deepEqual(sent.message.params._meta, { traceparent: caller, tracestate: 'v=1' });
    assert.deepEqual([sent.headers?.traceparent, sent.headers?.tracestate], [caller, 'v=1']);
    assert.equal(exporter.getFinishedSpans().length, 0);
  });

  test('a sampled caller is followed (ParentBased) whatever the ratio', () => {
    const { session, port } = newSession();
    const caller = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const text = `{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"_meta":{"traceparent":"${caller}"}}}`;
    session.receive(JSON.parse(text) as JsonRpcMessage, text, STANDALONE_STREAM);
    port.sink!.upstreamMessage({ jsonrpc: '2.0', id: 4, result: {} }, undefined, undefined);
    const [client] = exporter.getFinishedSpans();
    assert.equal(
      JSON.parse(port.sent[0]!.raw!).params._meta.traceparent,
      `00-0af7651916cd43dd8448eb211c80319c-${client!.spanContext().spanId}-01`,
    );
  });
});
