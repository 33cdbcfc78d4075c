import type { IncomingHttpHeaders } from 'node:http';
import { SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import type { JsonRpcMessage, JsonRpcRequest } from '../../../libs/protocol/src';
import type { MessageHeaders, UpstreamTransportKind } from '../../upstream/upstream-connection';
import { carrierFor, headerValue, parentContext } from './trace-context';
import { Tracing } from './tracing';

/** What the spans of one request need to know about its session (a Session provides it). */
export interface TracedSession {
  readonly id: string;
  readonly protocolVersion: string | undefined;
  /** The client transport the request arrived on. */
  readonly transport: 'streamable' | 'sse' | 'ws';
  /** Headers of the HTTP request (POST, or the WebSocket upgrade) that carried the message. */
  readonly incoming: IncomingHttpHeaders | undefined;
}

/** Where the upstream of a session is, for the CLIENT span (OpenTelemetry `server.*`, `network.*`). */
export interface UpstreamTarget {
  transport: UpstreamTransportKind;
  url?: string;
}

/**
 * The two spans of one client request (MCP semantic conventions): SERVER for the gateway's
 * handling of the client's request, CLIENT for the call to the upstream, its child. Both end
 * when the answer is delivered to the client.
 */
export interface RequestTrace {
  server: Span;
  client: Span;
  /** `traceparent` naming the CLIENT span: what the upstream receives, in `_meta` and as a header. */
  traceparent: string | undefined;
  tracestate: string | undefined;
}

const CLIENT_PROTOCOL = { streamable: 'http', sse: 'http', ws: 'websocket' } as const;

/**
 * Starts the spans of a client request and rewrites its `params._meta.traceparent` to the
 * gateway's CLIENT span, so the upstream's span is a child of the gateway's, not of the
 * caller's. The caller's trace context comes from `_meta` (per message) or else from the
 * HTTP request that carried it. Only called while tracing is on.
 */
export function startRequestTrace(
  session: TracedSession,
  message: JsonRpcRequest,
  target: UpstreamTarget | undefined,
): RequestTrace {
  const params = message.params as Record<string, unknown> | undefined;
  const meta = params?._meta as Record<string, unknown> | undefined;
  const parent =
    meta && typeof meta.traceparent === 'string'
      ? parentContext(meta.traceparent, meta.tracestate)
      : parentContext(headerValue(session.incoming?.traceparent), headerValue(session.incoming?.tracestate));
  const attributes = mcpAttributes(session, message, params);
  const name = spanName(message.method, attributes);
  const server = Tracing.tracer.startSpan(
    name,
    {
      kind: SpanKind.SERVER,
      attributes: {
        ...attributes,
        'network.transport': 'tcp',
        'network.protocol.name': CLIENT_PROTOCOL[session.transport],
      },
    },
    parent,
  );
  const client = Tracing.tracer.startSpan(
    name,
    { kind: SpanKind.CLIENT, attributes: { ...attributes, ...targetAttributes(target) } },
    trace.setSpan(parent, server),
  );
  const carrier = carrierFor(client);
  const nextMeta: Record<string, unknown> = { ...meta, traceparent: carrier.traceparent };
  if (carrier.tracestate !== undefined) nextMeta.tracestate = carrier.tracestate;
  else delete nextMeta.tracestate;
  message.params = { ...params, _meta: nextMeta };
  return { server, client, traceparent: carrier.traceparent, tracestate: carrier.tracestate };
}

/** The headers of the message plus the CLIENT span's trace context (HTTP upstreams send them). */
export function traceHeaders(
  t: RequestTrace,
  headers: MessageHeaders | undefined,
): MessageHeaders | undefined {
  if (t.traceparent === undefined) return headers;
  const out: Record<string, string> = { ...headers, traceparent: t.traceparent };
  if (t.tracestate !== undefined) out.tracestate = t.tracestate;
  return out;
}

/** The answer is being delivered: a JSON-RPC error marks both spans failed with its code. */
export function endRequestTrace(t: RequestTrace, response: JsonRpcMessage): void {
  const error = (response as { error?: { code?: unknown; message?: unknown } }).error;
  if (error) {
    const code = String(error.code);
    const message = typeof error.message === 'string' ? error.message : undefined;
    for (const span of [t.client, t.server]) {
      span.setAttributes({ 'error.type': code, 'rpc.response.status_code': code });
      span.setStatus({ code: SpanStatusCode.ERROR, message });
    }
  }
  t.client.end();
  t.server.end();
}

/** The request ended without an answer (cancelled, abandoned, session closed). */
export function abortRequestTrace(t: RequestTrace, errorType: string): void {
  for (const span of [t.client, t.server]) {
    span.setAttribute('error.type', errorType);
    span.setStatus({ code: SpanStatusCode.ERROR, message: errorType });
  }
  t.client.end();
  t.server.end();
}

function mcpAttributes(
  session: TracedSession,
  message: JsonRpcRequest,
  params: Record<string, unknown> | undefined,
): Attributes {
  const a: Attributes = {
    'mcp.method.name': message.method,
    'mcp.session.id': session.id,
    'jsonrpc.request.id': String(message.id),
  };
  if (session.protocolVersion !== undefined) a['mcp.protocol.version'] = session.protocolVersion;
  else if (typeof params?.protocolVersion === 'string') a['mcp.protocol.version'] = params.protocolVersion;
  const name = typeof params?.name === 'string' ? params.name : undefined;
  if (message.method === 'tools/call') {
    a['gen_ai.operation.name'] = 'execute_tool';
    if (name !== undefined) a['gen_ai.tool.name'] = name;
  } else if (message.method === 'prompts/get') {
    if (name !== undefined) a['gen_ai.prompt.name'] = name;
  } else if (message.method.startsWith('resources/') && typeof params?.uri === 'string') {
    a['mcp.resource.uri'] = params.uri;
  }
  return a;
}

/** `{mcp.method.name} {target}`: the tool or prompt name when there is one. */
function spanName(method: string, a: Attributes): string {
  const target = a['gen_ai.tool.name'] ?? a['gen_ai.prompt.name'];
  return target === undefined ? method : `${method} ${String(target)}`;
}

function targetAttributes(target: UpstreamTarget | undefined): Attributes {
  if (!target) return {};
  switch (target.transport) {
    case 'stdio':
      return { 'network.transport': 'pipe' };
    case 'embedded':
      return { 'network.transport': 'inproc' };
    default: {
      const a: Attributes = {
        'network.transport': 'tcp',
        'network.protocol.name': target.transport === 'ws' ? 'websocket' : 'http',
      };
      if (target.url !== undefined) {
        try {
          const u = new URL(target.url);
          a['server.address'] = u.hostname.replace(/^\[|\]$/g, '');
          a['server.port'] = Number(u.port || defaultPort(u.protocol));
        } catch {
          // A replica URL was validated at load; nothing to add if it somehow is not one.
        }
      }
      return a;
    }
  }
}

function defaultPort(protocol: string): number {
  return protocol === 'https:' || protocol === 'wss:' ? 443 : 80;
}
