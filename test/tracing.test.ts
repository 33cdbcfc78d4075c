/**
 * OpenTelemetry through the gateway, against a real OTLP/HTTP receiver and a real SDK Streamable
 * HTTP upstream: the gateway's SERVER and CLIENT spans carry the MCP semantic-convention names
 * and attributes, the caller's trace context parents the SERVER span, and the upstream gets the
 * same trace id as a `traceparent` header and in `params._meta`, parented on the CLIENT span.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { TracingService } from '../src/telemetry/tracing/tracing.service';
import { startWsMcpServer, type WsMcpServer } from './fixtures/ws-mcp-server';
import { connectClient } from './helpers/clients';
import { SdkHttpSessions } from './helpers/sdk-http-sessions';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { waitUntil } from './helpers/upstream-test-kit';

/** What the upstream saw of one request: its method, the traceparent header, `_meta.traceparent`. */
interface Seen {
  method: string;
  header: string | undefined;
  meta: string | undefined;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

/** An SDK Streamable HTTP server with a `get_weather` tool that records each request's trace context. */
async function startUpstream(): Promise<{ url: string; port: number; server: Server; seen: Seen[] }> {
  const seen: Seen[] = [];
  const sessions = new SdkHttpSessions(() => {
    const mcp = new McpServer({ name: 'weather', version: '1.0.0' });
    mcp.registerTool('get_weather', { inputSchema: { city: z.string() } }, ({ city }) => ({
      content: [{ type: 'text', text: `sunny in ${city}` }],
    }));
    return mcp;
  });
  const server = createServer((req, res) => {
    void (async () => {
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      const m = body as { method?: string; params?: { _meta?: { traceparent?: string } } } | undefined;
      if (m?.method !== undefined) {
        const header = req.headers.traceparent;
        seen.push({
          method: m.method,
          header: typeof header === 'string' ? header : undefined,
          meta: m.params?._meta?.traceparent,
        });
      }
      await sessions.handle(req, res, body);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/mcp`, port, server, seen };
}

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  status?: { code?: number };
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
}

const SERVER = 2;
const CLIENT = 3;

/** A collector's OTLP/HTTP JSON endpoint: keeps every span and the service name it came with. */
async function startReceiver(): Promise<{
  url: string;
  server: Server;
  spans: OtlpSpan[];
  services: Set<string>;
}> {
  const spans: OtlpSpan[] = [];
  const services = new Set<string>();
  const server = createServer((req, res) => {
    void (async () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      assert.match(String(req.headers['content-type']), /application\/json/);
      const body = (await readJson(req)) as {
        resourceSpans: Array<{
          resource: { attributes: OtlpSpan['attributes'] };
          scopeSpans: Array<{ spans: OtlpSpan[] }>;
        }>;
      };
      for (const rs of body.resourceSpans) {
        const name = rs.resource.attributes.find((a) => a.key === 'service.name');
        if (name) services.add(String(name.value.stringValue));
        for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    })().catch(() => res.writeHead(400).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, server, spans, services };
}

/** Protobuf wire fields of one message: field number → values (bytes of length-delimited ones, else numbers). */
function protoFields(buf: Buffer): Map<number, Array<Buffer | number>> {
  const out = new Map<number, Array<Buffer | number>>();
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = buf[i++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
      shift += 7;
    }
  };
  while (i < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    let value: Buffer | number;
    switch (key & 7) {
      case 0:
        value = varint();
        break;
      case 1:
        value = buf.subarray(i, (i += 8));
        break;
      case 2: {
        const n = varint();
        value = buf.subarray(i, (i += n));
        break;
      }
      case 5:
        value = buf.subarray(i, (i += 4));
        break;
      default:
        throw new Error(`wire type ${key & 7}`);
    }
    const list = out.get(field) ?? [];
    list.push(value);
    out.set(field, list);
  }
  return out;
}

/** The spans of an OTLP ExportTraceServiceRequest (protobuf): ids, name and kind. */
function decodeProtobufSpans(body: Buffer): Array<Omit<OtlpSpan, 'attributes' | 'status'>> {
  const spans: Array<Omit<OtlpSpan, 'attributes' | 'status'>> = [];
  const bytes = (m: Map<number, Array<Buffer | number>>, n: number) => m.get(n)?.[0] as Buffer | undefined;
  for (const rs of protoFields(body).get(1) ?? []) {
    for (const ss of protoFields(rs as Buffer).get(2) ?? []) {
      for (const raw of protoFields(ss as Buffer).get(2) ?? []) {
        const span = protoFields(raw as Buffer);
        spans.push({
          traceId: bytes(span, 1)!.toString('hex'),
          spanId: bytes(span, 2)!.toString('hex'),
          parentSpanId: bytes(span, 4)?.toString('hex') || undefined,
          name: bytes(span, 5)!.toString('utf8'),
          kind: (span.get(6)?.[0] as number | undefined) ?? 0,
        });
      }
    }
  }
  return spans;
}

function attr(span: OtlpSpan, key: string): unknown {
  const a = span.attributes.find((x) => x.key === key);
  if (!a) return undefined;
  const v = a.value;
  return v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue));
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

async function connect(
  base: string,
  headers: Record<string, string> = {},
): Promise<{ client: Client; t: StreamableHTTPClientTransport }> {
  const t = new StreamableHTTPClientTransport(new URL('/mcp/weather', base), { requestInit: { headers } });
  const client = new Client({ name: 'trace-test', version: '1.0.0' });
  await client.connect(t);
  return { client, t };
}

function closeServer(server: Server | undefined): Promise<unknown> {
  if (!server) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((resolve) => server.close(resolve));
}

describe('tracing off (no OTLP endpoint)', () => {
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let gw: RunningGateway;
  before(async () => {
    upstream = await startUpstream();
    gw = await startGateway({
      services: { weather: { replicas: [{ transport: 'streamable-http', url: upstream.url }] } },
    });
  });
  after(async () => {
    await gw?.close();
    await closeServer(upstream?.server);
  });

  test('the upstream gets no traceparent, and a caller’s _meta.traceparent passes untouched', async () => {
    const { client } = await connect(gw.url);
    try {
      const callers = `00-${hex(16)}-${hex(8)}-01`;
      const r = await client.callTool({
        name: 'get_weather',
        arguments: { city: 'Oslo' },
        _meta: { traceparent: callers },
      });
      assert.deepEqual(r.content, [{ type: 'text', text: 'sunny in Oslo' }]);
      await client.listTools();
      const calls = upstream.seen.filter((s) => s.method === 'tools/call');
      assert.equal(calls.length, 1);
      assert.equal(calls[0]!.header, undefined);
      assert.equal(calls[0]!.meta, callers);
      const list = upstream.seen.find((s) => s.method === 'tools/list');
      assert.deepEqual([list?.header, list?.meta], [undefined, undefined]);
    } finally {
      await client.close();
    }
  });
});

describe('tracing on (OTLP/HTTP receiver in the test)', () => {
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let wsUpstream: WsMcpServer;
  let gw: RunningGateway;
  const flush = () => gw.gateway.app.get(TracingService).flush();

  before(async () => {
    upstream = await startUpstream();
    receiver = await startReceiver();
    wsUpstream = await startWsMcpServer();
    gw = await startGateway(
      {
        services: {
          weather: { replicas: [{ transport: 'streamable-http', url: upstream.url }] },
          // The same upstream behind a pool of shared upstream sessions.
          pooledweather: { mode: 'pooled', replicas: [{ transport: 'streamable-http', url: upstream.url }] },
          // An MCP server over WebSocket that records each upgrade's headers.
          wsecho: { replicas: [{ transport: 'ws', url: wsUpstream.url }] },
        },
      },
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_SERVICE_NAME: 'mcp-gateway',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      },
    );
  });

  test('pooled mode: the CLIENT span names the replica, and the upstream is parented on it', async () => {
    const traceId = hex(16);
    const t = new StreamableHTTPClientTransport(new URL('/mcp/pooledweather', gw.url), {
      requestInit: { headers: { traceparent: `00-${traceId}-${hex(8)}-01` } },
    });
    const client = new Client({ name: 'trace-test-pooled', version: '1.0.0' });
    await client.connect(t);
    try {
      upstream.seen.length = 0;
      const r = await client.callTool({ name: 'get_weather', arguments: { city: 'Quito' } });
      assert.deepEqual(r.content, [{ type: 'text', text: 'sunny in Quito' }]);
      await flush();
      const clientSpan = () =>
        receiver.spans.find(
          (s) => s.traceId === traceId && s.name === 'tools/call get_weather' && s.kind === CLIENT,
        );
      await waitUntil(() => clientSpan() !== undefined, 5000, 'the pooled CLIENT span');
      assert.equal(attr(clientSpan()!, 'server.address'), '127.0.0.1');
      assert.equal(attr(clientSpan()!, 'server.port'), upstream.port);
      const call = upstream.seen.find((s) => s.method === 'tools/call')!;
      assert.equal(call.meta, `00-${traceId}-${clientSpan()!.spanId}-01`, '_meta.traceparent');
    } finally {
      await client.close();
    }
  });
  after(async () => {
    await gw?.close();
    await closeServer(upstream?.server);
    await closeServer(receiver?.server);
    await wsUpstream?.close();
  });

  test('WebSocket upstream: the upgrade carries the trace of the request that opened it, naming a gateway span', async () => {
    const traceId = hex(16);
    const callerSpan = hex(8);
    const opened = wsUpstream.upgrades.length;
    const t = new StreamableHTTPClientTransport(new URL('/mcp/wsecho', gw.url), {
      requestInit: { headers: { traceparent: `00-${traceId}-${callerSpan}-01`, tracestate: 'vendor=1' } },
    });
    const client = new Client({ name: 'trace-test-ws-upstream', version: '1.0.0' });
    await client.connect(t);
    try {
      const r = await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
      assert.deepEqual(r.content, [{ type: 'text', text: 'hi' }]);
      assert.equal(wsUpstream.upgrades.length, opened + 1, 'one upstream connection for the session');
      const upgrade = wsUpstream.upgrades[opened]!.headers;
      const [version, upgradeTrace, upgradeParent, flags] = String(upgrade.traceparent).split('-');
      assert.deepEqual([version, upgradeTrace, flags], ['00', traceId, '01']);
      assert.equal(upgrade.tracestate, 'vendor=1');
      await flush();
      const connectSpan = () => receiver.spans.find((s) => s.spanId === upgradeParent);
      await waitUntil(() => connectSpan() !== undefined, 5000, 'the span the upgrade names');
      const connect = connectSpan()!;
      assert.deepEqual([connect.name, connect.kind, connect.traceId], ['upstream connect', CLIENT, traceId]);
      assert.equal(connect.parentSpanId, callerSpan, 'parented on the request that created the session');
      assert.equal(attr(connect, 'network.protocol.name'), 'websocket');
      assert.equal(attr(connect, 'server.port'), wsUpstream.port);
      // The gateway's spans of the call are in the same trace.
      await waitUntil(
        () =>
          receiver.spans.some(
            (s) => s.traceId === traceId && s.name === 'tools/call echo' && s.kind === SERVER,
          ),
        5000,
        'the tools/call SERVER span',
      );
    } finally {
      await client.close();
    }
  });

  test('WebSocket upstream with no caller context: the upgrade names a root connect span', async () => {
    const opened = wsUpstream.upgrades.length;
    const t = new StreamableHTTPClientTransport(new URL('/mcp/wsecho', gw.url));
    const c = new Client({ name: 'trace-test-ws-root', version: '1.0.0' });
    await c.connect(t);
    try {
      await c.callTool({ name: 'echo', arguments: { text: 'root' } });
      const upgrade = wsUpstream.upgrades[opened]!.headers;
      const [, upgradeTrace, upgradeParent] = String(upgrade.traceparent).split('-');
      assert.equal(upgrade.tracestate, undefined);
      await flush();
      await waitUntil(() => receiver.spans.some((s) => s.spanId === upgradeParent), 5000, 'the connect span');
      const span = receiver.spans.find((s) => s.spanId === upgradeParent)!;
      assert.deepEqual(
        [span.name, span.traceId, span.parentSpanId || undefined],
        ['upstream connect', upgradeTrace, undefined],
      );
    } finally {
      await c.close();
    }
  });

  test('tools/call: SERVER span parented on the caller’s header, CLIENT span its child, upstream parented on CLIENT', async () => {
    const traceId = hex(16);
    const callerSpan = hex(8);
    const { client, t } = await connect(gw.url, { traceparent: `00-${traceId}-${callerSpan}-01` });
    try {
      upstream.seen.length = 0;
      const r = await client.callTool({ name: 'get_weather', arguments: { city: 'Lima' } });
      assert.deepEqual(r.content, [{ type: 'text', text: 'sunny in Lima' }]);
      await flush();
      const named = () =>
        receiver.spans.filter((s) => s.traceId === traceId && s.name === 'tools/call get_weather');
      await waitUntil(() => named().length === 2, 5000, 'the tools/call spans');
      const server = named().find((s) => s.kind === SERVER)!;
      const clientSpan = named().find((s) => s.kind === CLIENT)!;
      assert.ok(server && clientSpan, 'one SERVER and one CLIENT span');
      assert.equal(server.parentSpanId, callerSpan);
      assert.equal(clientSpan.parentSpanId, server.spanId);
      for (const s of [server, clientSpan]) {
        assert.equal(attr(s, 'mcp.method.name'), 'tools/call');
        assert.equal(attr(s, 'gen_ai.tool.name'), 'get_weather');
        assert.equal(attr(s, 'gen_ai.operation.name'), 'execute_tool');
        assert.equal(attr(s, 'mcp.session.id'), t.sessionId);
        assert.equal(typeof attr(s, 'jsonrpc.request.id'), 'string');
        assert.equal(typeof attr(s, 'mcp.protocol.version'), 'string');
        assert.equal(attr(s, 'error.type'), undefined);
      }
      assert.equal(attr(server, 'network.protocol.name'), 'http');
      assert.equal(attr(clientSpan, 'network.protocol.name'), 'http');
      assert.equal(attr(clientSpan, 'server.address'), '127.0.0.1');
      assert.equal(attr(clientSpan, 'server.port'), upstream.port);
      assert.ok(receiver.services.has('mcp-gateway'));

      const expected = `00-${traceId}-${clientSpan.spanId}-01`;
      const call = upstream.seen.find((s) => s.method === 'tools/call')!;
      assert.equal(call.header, expected, 'traceparent header');
      assert.equal(call.meta, expected, '_meta.traceparent');
    } finally {
      await client.close();
    }
  });

  test('a _meta.traceparent wins over the HTTP header (it is per message)', async () => {
    const headerTrace = hex(16);
    const metaTrace = hex(16);
    const metaSpan = hex(8);
    const { client } = await connect(gw.url, { traceparent: `00-${headerTrace}-${hex(8)}-01` });
    try {
      upstream.seen.length = 0;
      await client.callTool({
        name: 'get_weather',
        arguments: { city: 'Rome' },
        _meta: { traceparent: `00-${metaTrace}-${metaSpan}-01` },
      });
      await flush();
      const spans = () => receiver.spans.filter((s) => s.traceId === metaTrace);
      await waitUntil(() => spans().length === 2, 5000, 'spans of the _meta trace');
      const server = spans().find((s) => s.kind === SERVER)!;
      assert.equal(server.parentSpanId, metaSpan);
      const clientSpan = spans().find((s) => s.kind === CLIENT)!;
      const call = upstream.seen.find((s) => s.method === 'tools/call')!;
      assert.equal(call.meta, `00-${metaTrace}-${clientSpan.spanId}-01`);
      assert.equal(call.header, call.meta);
    } finally {
      await client.close();
    }
  });

  test('an upstream JSON-RPC error marks both spans failed with its code as error.type', async () => {
    const traceId = hex(16);
    const { client } = await connect(gw.url, { traceparent: `00-${traceId}-${hex(8)}-01` });
    try {
      await assert.rejects(
        client.request({ method: 'nothing/here', params: {} }, z.object({}).passthrough()),
      );
      await flush();
      const spans = () => receiver.spans.filter((s) => s.traceId === traceId && s.name === 'nothing/here');
      await waitUntil(() => spans().length === 2, 5000, 'the failed request’s spans');
      for (const s of spans()) {
        assert.equal(attr(s, 'error.type'), '-32601');
        assert.equal(s.status?.code, 2, 'status ERROR');
      }
    } finally {
      await client.close();
    }
  });

  test('a call without any trace context starts a new trace (root SERVER span)', async () => {
    const { client } = await connect(gw.url);
    try {
      upstream.seen.length = 0;
      await client.callTool({ name: 'get_weather', arguments: { city: 'Kyiv' } });
      await flush();
      const call = upstream.seen.find((s) => s.method === 'tools/call')!;
      const [, traceId, spanId] = call.meta!.split('-');
      await waitUntil(() => receiver.spans.some((s) => s.spanId === spanId), 5000, 'the CLIENT span');
      const clientSpan = receiver.spans.find((s) => s.spanId === spanId)!;
      const server = receiver.spans.find((s) => s.spanId === clientSpan.parentSpanId)!;
      assert.equal(server.traceId, traceId);
      assert.equal(server.kind, SERVER);
      assert.ok(!server.parentSpanId, 'root span');
    } finally {
      await client.close();
    }
  });

  for (const transport of ['sse', 'ws'] as const) {
    test(`${transport} client: the SERVER span names its protocol, the upstream is parented on the CLIENT span`, async () => {
      const { client } = await connectClient(gw.url, transport, 'weather');
      try {
        upstream.seen.length = 0;
        const traceId = hex(16);
        const parent = hex(8);
        await client.callTool({
          name: 'get_weather',
          arguments: { city: transport },
          _meta: { traceparent: `00-${traceId}-${parent}-01` },
        });
        await flush();
        const spans = () => receiver.spans.filter((s) => s.traceId === traceId);
        await waitUntil(() => spans().length === 2, 5000, `spans of the ${transport} call`);
        const server = spans().find((s) => s.kind === SERVER)!;
        const clientSpan = spans().find((s) => s.kind === CLIENT)!;
        assert.equal(server.parentSpanId, parent);
        assert.equal(clientSpan.parentSpanId, server.spanId);
        assert.equal(attr(server, 'network.protocol.name'), transport === 'ws' ? 'websocket' : 'http');
        const call = upstream.seen.find((s) => s.method === 'tools/call')!;
        assert.equal(call.meta, `00-${traceId}-${clientSpan.spanId}-01`);
        assert.equal(call.header, call.meta);
      } finally {
        await client.close();
      }
    });
  }

  test('Nest controllers are traced by TracingInterceptor with the same tracer', async () => {
    const traceId = hex(16);
    const parent = hex(8);
    const res = await fetch(`${gw.url}/health`, { headers: { traceparent: `00-${traceId}-${parent}-01` } });
    assert.equal(res.status, 200);
    await flush();
    await waitUntil(() => receiver.spans.some((s) => s.traceId === traceId), 5000, 'the /health span');
    const span = receiver.spans.find((s) => s.traceId === traceId)!;
    assert.equal(span.name, 'GET /health');
    assert.equal(span.kind, SERVER);
    assert.equal(span.parentSpanId, parent);
    assert.equal(attr(span, 'http.response.status_code'), 200);
  });
});

describe('tracing on with the default OTLP encoding (protobuf)', () => {
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let receiver: Server;
  const types: string[] = [];
  const spans: ReturnType<typeof decodeProtobufSpans> = [];
  let gw: RunningGateway;

  before(async () => {
    upstream = await startUpstream();
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        types.push(String(req.headers['content-type']));
        try {
          spans.push(...decodeProtobufSpans(Buffer.concat(chunks)));
          res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
        } catch {
          res.writeHead(400).end();
        }
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const { port } = receiver.address() as { port: number };
    gw = await startGateway(
      { services: { weather: { replicas: [{ transport: 'streamable-http', url: upstream.url }] } } },
      { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` },
    );
  });
  after(async () => {
    await gw?.close();
    await closeServer(upstream?.server);
    await closeServer(receiver);
  });

  test('spans arrive as application/x-protobuf, SERVER parented on the caller, CLIENT on SERVER', async () => {
    const traceId = hex(16);
    const callerSpan = hex(8);
    const { client } = await connect(gw.url, { traceparent: `00-${traceId}-${callerSpan}-01` });
    try {
      await client.callTool({ name: 'get_weather', arguments: { city: 'Bern' } });
      await gw.gateway.app.get(TracingService).flush();
      const named = () => spans.filter((s) => s.traceId === traceId && s.name === 'tools/call get_weather');
      await waitUntil(() => named().length === 2, 5000, 'the protobuf-encoded spans');
      assert.ok(
        types.every((t) => t === 'application/x-protobuf'),
        types.join(', '),
      );
      const server = named().find((s) => s.kind === SERVER)!;
      const clientSpan = named().find((s) => s.kind === CLIENT)!;
      assert.equal(server.parentSpanId, callerSpan);
      assert.equal(clientSpan.parentSpanId, server.spanId);
      const call = upstream.seen.find((s) => s.method === 'tools/call')!;
      assert.equal(call.meta, `00-${traceId}-${clientSpan.spanId}-01`);
    } finally {
      await client.close();
    }
  });
});
