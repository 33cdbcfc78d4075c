import type { IncomingHttpHeaders } from 'node:http';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
  type Attributes,
  type Span,
} from '@opentelemetry/api';
import type { JsonRpcMessage, JsonRpcRequest } from '../../../libs/protocol/src';
import type { MessageHeaders, UpstreamTransportKind } from '../../core/transport-kind';
import { spliceMeta } from './meta-splice';
import { headerValue, parentContext } from './trace-context';
import { Tracing } from './tracing';

/** What the spans of one request need to know about its session (a Session provides it). */
export interface TracedSession {
  readonly id: string;
  readonly protocolVersion: string | undefined;
  /** The client transport the request arrived on. */
  readonly transport: 'streamable' | 'sse' | 'ws';
  /** Headers of the HTTP request (POST, or the WebSocket upgrade) that carried the message. */
  readonly incoming: IncomingHttpHeaders | undefined;
  /** Where its upstream is now (asked only for sampled requests). */
  upstreamTarget(): UpstreamTarget | undefined;
}

/** Where the upstream of a session is, for the CLIENT span (OpenTelemetry `server.*`, `network.*`). */
export interface UpstreamTarget {
  transport: UpstreamTransportKind;
  url?: string;
}

/**
 * The two spans of one sampled client request (MCP semantic conventions): SERVER for the
 * gateway's handling of the client's request, CLIENT for the call to the upstream, its child.
 * Both end when the answer is delivered to the client.
 */
export interface RequestTrace {
  server: Span;
  client: Span;
}

/**
 * What {@link startRequestTrace} decided for one request: its spans when it is sampled, and
 * what goes to the upstream — the text to forward (the original, the original with a new
 * `_meta` spliced in, or undefined: re-serialise the message) and the headers (HTTP and
 * WebSocket upstreams send `traceparent`/`tracestate` from them).
 */
export interface TraceStart {
  trace: RequestTrace | undefined;
  raw: string | undefined;
  headers: MessageHeaders | undefined;
}

const CLIENT_PROTOCOL = { streamable: 'http', sse: 'http', ws: 'websocket' } as const;

// One result object, overwritten by every call and read at once by the caller (no allocation per message).
const started: TraceStart = { trace: undefined, raw: undefined, headers: undefined };

/**
 * Starts the spans of a client request and decides what trace context its upstream gets.
 * The caller's context comes from `params._meta` (per message) or else from the HTTP request
 * that carried it (the POST, or the WebSocket upgrade). Only called while tracing is on.
 *
 * Sampled (ParentBased(TraceIdRatio), so a caller's sampled flag is followed): a SERVER span
 * and its CLIENT child; `_meta.traceparent` and the headers name the CLIENT span, so the
 * upstream's span is a child of the gateway's, not of the caller's.
 * Not sampled: no span is recorded, so there is no gateway span to name. A caller's context
 * goes on unchanged (W3C: sampled flag 0, same trace, parented on the caller's span): from
 * `_meta` it is already in the text (forwarded byte for byte, header added); from the HTTP
 * request it is copied into `_meta` too, since only the header would not reach every upstream.
 * A request with no caller context that the gateway does not sample carries nothing new —
 * there is no trace to keep the upstream in — and costs one sampling decision.
 */
export function startRequestTrace(
  session: TracedSession,
  message: JsonRpcRequest,
  raw: string | undefined,
  headers: MessageHeaders | undefined,
): TraceStart {
  const params = message.params as Record<string, unknown> | undefined;
  const meta = objectOrUndefined(params?._meta);
  let callerParent: string | undefined;
  let callerState: string | undefined;
  const fromMeta = meta !== undefined && typeof meta.traceparent === 'string';
  if (fromMeta) {
    callerParent = meta.traceparent as string;
    callerState = typeof meta.tracestate === 'string' ? meta.tracestate : undefined;
  } else {
    const incoming = session.incoming;
    callerParent = incoming ? headerValue(incoming.traceparent) : undefined;
    callerState = incoming ? headerValue(incoming.tracestate) : undefined;
  }
  const parent = callerParent === undefined ? ROOT_CONTEXT : parentContext(callerParent, callerState);
  const name = spanName(message.method, params);
  const server = Tracing.tracer.startSpan(name, SERVER_KIND, parent);
  started.trace = undefined;
  started.raw = raw;
  started.headers = headers;
  if (!server.isRecording()) {
    // A malformed caller traceparent names no trace: nothing of it is carried on.
    if (callerParent === undefined || trace.getSpanContext(parent) === undefined) return started;
    started.headers = withTraceHeaders(headers, callerParent, callerState);
    if (!fromMeta) placeMeta(message, params, meta, callerParent, callerState, raw);
    return started;
  }
  server.setAttributes(serverAttributes(session, message, params));
  const client = Tracing.tracer.startSpan(
    name,
    { kind: SpanKind.CLIENT, attributes: clientAttributes(session, message, params) },
    trace.setSpan(parent, server),
  );
  const sc = client.spanContext();
  const traceparent = `00-${sc.traceId}-${sc.spanId}-${sc.traceFlags & TraceFlags.SAMPLED ? '01' : '00'}`;
  const tracestate = sc.traceState?.serialize() || undefined;
  started.trace = { server, client };
  started.headers = withTraceHeaders(headers, traceparent, tracestate);
  placeMeta(message, params, meta, traceparent, tracestate, raw);
  return started;
}

const SERVER_KIND = { kind: SpanKind.SERVER };

/**
 * Sets `params._meta.traceparent`/`tracestate` on the message (embedded and stdio upstreams
 * read the object) and in its text (`started.raw`: spliced where that is safe, else undefined
 * so the upstream re-serialises). Array params cannot carry `_meta`: those go as they are.
 */
function placeMeta(
  message: JsonRpcRequest,
  params: Record<string, unknown> | undefined,
  meta: Record<string, unknown> | undefined,
  traceparent: string,
  tracestate: string | undefined,
  raw: string | undefined,
): void {
  if (Array.isArray(params) || (params !== undefined && (typeof params !== 'object' || params === null)))
    return;
  const next: Record<string, unknown> = meta ? { ...meta, traceparent } : { traceparent };
  if (tracestate !== undefined) next.tracestate = tracestate;
  else delete next.tracestate;
  if (params) params._meta = next;
  else message.params = { _meta: next };
  started.raw = raw === undefined ? undefined : spliceMeta(raw, JSON.stringify(next));
}

function objectOrUndefined(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/** The message's headers plus a trace context (a new object: the caller's may be shared). */
function withTraceHeaders(
  headers: MessageHeaders | undefined,
  traceparent: string,
  tracestate: string | undefined,
): MessageHeaders {
  const out: Record<string, string> = { ...headers, traceparent };
  if (tracestate !== undefined) out.tracestate = tracestate;
  else delete out.tracestate;
  return out;
}

/** The span of opening an upstream connection, and the trace context its connect request carries. */
export interface ConnectTrace {
  span: Span | undefined;
  /** `traceparent`/`tracestate` for the upgrade request; undefined: none. */
  headers: MessageHeaders | undefined;
}

/**
 * Starts the CLIENT span `upstream connect` for a connection opened on behalf of a request
 * (the request that created the session, or the one that made it fail over), parented on
 * that request's trace context. Sampling follows the request rule: sampled, the connect
 * request carries the connect span; not sampled, a caller's context goes on unchanged and a
 * gateway-rooted one carries nothing. Only called while tracing is on.
 */
export function startConnectTrace(
  parent: { traceparent?: string; tracestate?: string } | undefined,
  target: UpstreamTarget,
): ConnectTrace {
  const callerParent = parent?.traceparent;
  const ctx = callerParent === undefined ? ROOT_CONTEXT : parentContext(callerParent, parent?.tracestate);
  const span = Tracing.tracer.startSpan('upstream connect', CONNECT_KIND, ctx);
  if (!span.isRecording()) {
    const forwarded =
      callerParent !== undefined && trace.getSpanContext(ctx) !== undefined
        ? withTraceHeaders(undefined, callerParent, parent?.tracestate)
        : undefined;
    return { span: undefined, headers: forwarded };
  }
  span.setAttributes(targetAttributes(target));
  const sc = span.spanContext();
  return {
    span,
    headers: withTraceHeaders(
      undefined,
      `00-${sc.traceId}-${sc.spanId}-${sc.traceFlags & TraceFlags.SAMPLED ? '01' : '00'}`,
      sc.traceState?.serialize() || undefined,
    ),
  };
}

/** The connection opened, or could not be (its message becomes the span's error). */
export function endConnectTrace(t: ConnectTrace, error: Error | undefined): void {
  if (!t.span) return;
  if (error) {
    t.span.setAttribute('error.type', error.name || 'Error');
    t.span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  }
  t.span.end();
}

const CONNECT_KIND = { kind: SpanKind.CLIENT };

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

function serverAttributes(
  session: TracedSession,
  message: JsonRpcRequest,
  params: Record<string, unknown> | undefined,
): Attributes {
  const a = mcpAttributes(session, message, params);
  a['network.transport'] = 'tcp';
  a['network.protocol.name'] = CLIENT_PROTOCOL[session.transport];
  return a;
}

function clientAttributes(
  session: TracedSession,
  message: JsonRpcRequest,
  params: Record<string, unknown> | undefined,
): Attributes {
  const a = mcpAttributes(session, message, params);
  const target = session.upstreamTarget();
  if (!target) return a;
  const t = targetAttributes(target);
  for (const key in t) a[key] = t[key];
  return a;
}

/** `{mcp.method.name} {target}`: the tool or prompt name when there is one. */
function spanName(method: string, params: Record<string, unknown> | undefined): string {
  if (method !== 'tools/call' && method !== 'prompts/get') return method;
  const name = params?.name;
  return typeof name === 'string' ? `${method} ${name}` : method;
}

// Replica URLs are few and long-lived: their attributes are worked out once, not per request.
const targetCache = new Map<string, Attributes>();
const TARGET_CACHE_MAX = 1024;

function targetAttributes(target: UpstreamTarget): Attributes {
  switch (target.transport) {
    case 'stdio':
      return PIPE;
    case 'embedded':
      return INPROC;
    default: {
      // The URL's scheme already tells ws from http.
      const key = target.url ?? target.transport;
      let a = targetCache.get(key);
      if (a) return a;
      a = {
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
      if (targetCache.size >= TARGET_CACHE_MAX) targetCache.clear();
      targetCache.set(key, a);
      return a;
    }
  }
}

const PIPE: Attributes = { 'network.transport': 'pipe' };
const INPROC: Attributes = { 'network.transport': 'inproc' };

function defaultPort(protocol: string): number {
  return protocol === 'https:' || protocol === 'wss:' ? 443 : 80;
}
