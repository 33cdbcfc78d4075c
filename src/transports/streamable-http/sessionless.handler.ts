import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import {
  checkRequestMeta,
  ErrorCode,
  errorResponse,
  Header,
  isNotification,
  isResponse,
  LATEST_SESSION_PROTOCOL,
  META_CLIENT_CAPABILITIES,
  META_CLIENT_INFO,
  META_LOG_LEVEL,
  META_PROTOCOL_VERSION,
  Method,
  parseJsonRpc,
  refusalKind,
  SESSIONLESS_PROTOCOL,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
} from '../../../libs/protocol/src';
import type { ChannelListener, ClientChannel } from '../../session/client-channel';
import { STANDALONE_STREAM, type Session } from '../../session/session';
import type { Identity } from '../../policy/identity';
import { clientIdFrom } from '../http/client-identity';
import { refusedForCapacity } from '../http/capacity-reply';
import { sendJson, sendStatus } from '../http/http-reply';
import type { KeepAliveTarget } from '../http/keep-alive-ticker';
import { SSE_HEADERS } from '../http/sse-channel';
import { checkParamHeaders, decodeHeaderValue, headerParamsOf, type HeaderParams } from './param-headers';
import type { StreamableHttpHandler } from './streamable-http.handler';
import { headerValue, refuse } from './streamable-http.handler';

/**
 * MCP 2026-07-28 ("modern", sessionless) Streamable HTTP, bridged to upstreams that speak the
 * initialize-based revisions.
 *
 * Every request stands alone: it carries its protocol version and client capabilities in
 * `_meta` and mirrors `method` / `params.name|uri` in the Mcp-Method / Mcp-Name headers, which an
 * intermediary must check against the body (−32020 on a mismatch). The gateway keeps one hidden
 * upstream session per (client id, service), initialized by the gateway itself, and runs each
 * request on it as its own stream. Request ids and progress tokens are remapped to gateway-unique
 * values on the way up (independent clients all start at id 1) and restored on the way down.
 * Closing the response before the answer cancels the request upstream.
 *
 * tools/call is also checked against the tool's `x-mcp-header` annotations (Mcp-Param-* headers,
 * see param-headers.ts), read from the upstream's tools/list and cached per hidden session.
 * subscriptions/listen is served by the bridge: it acknowledges with the filter the upstream's
 * capabilities allow, takes the hidden session's standalone stream while anybody listens, and
 * fans the upstream's list_changed / resources/updated notifications out to matching listeners.
 */

export const META_SERVER_INFO = 'io.modelcontextprotocol/serverInfo';

/** Methods of the initialize-based revisions that 2026-07-28 removed (answered 404 −32601). */
const REMOVED_METHODS = new Set([
  Method.Initialize,
  Method.Ping,
  'logging/setLevel',
  'resources/subscribe',
  'resources/unsubscribe',
]);

/** Requests whose Mcp-Name header mirrors a body field. */
const NAME_FIELD: Record<string, 'name' | 'uri'> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
};

/** Results that 2026-07-28 requires to carry ttlMs / cacheScope (CacheableResult). */
const CACHEABLE = new Set([
  'tools/list',
  'prompts/list',
  'resources/list',
  'resources/read',
  'resources/templates/list',
]);

/** Server→client requests and the client capability each needs. */
const CAPABILITY_OF: Record<string, string> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

/** Upstream errors whose 2026-07-28 HTTP status is not 200. */
function statusOfError(code: unknown): number {
  switch (code) {
    case ErrorCode.MethodNotFound:
      return 404; // an unknown method is 404, so clients can tell it from other errors
    case ErrorCode.HeaderMismatch:
    case ErrorCode.MissingClientCapability:
    case ErrorCode.UnsupportedProtocolVersion:
      return 400;
    default:
      return 200;
  }
}

/** How long a tool's cached `x-mcp-header` annotations are trusted without a fresh tools/list. */
const TOOL_SCHEMA_TTL_MS = 60_000;
/** Pages of tools/list the bridge reads on its own before giving up on finding a tool. */
const MAX_TOOL_PAGES = 20;

export const META_SUBSCRIPTION_ID = 'io.modelcontextprotocol/subscriptionId';

/** The subscriptions/listen filter fields and the upstream notification each one admits. */
const LIST_CHANGED: Record<string, { field: string; capability: string }> = {
  'notifications/tools/list_changed': { field: 'toolsListChanged', capability: 'tools' },
  'notifications/prompts/list_changed': { field: 'promptsListChanged', capability: 'prompts' },
  'notifications/resources/list_changed': { field: 'resourcesListChanged', capability: 'resources' },
};
const RESOURCE_UPDATED = 'notifications/resources/updated';

interface InitializeResult {
  protocolVersion?: string;
  capabilities?: Record<string, unknown>;
  serverInfo?: unknown;
  instructions?: string;
}

let bridgeCounter = 0;
const bridgeTag = process.pid.toString(36);
/** Ids and progress tokens the bridge sends upstream: unique per process, never a client's. */
function bridgeId(): string {
  bridgeCounter++;
  return `sl-${bridgeTag}-${bridgeCounter.toString(36)}`;
}

/** The gateway-owned upstream session shared by one client's sessionless requests to one service. */
class BridgeEntry {
  constructor(
    /** Its key in the bridges map: client id and service. */
    readonly key: string,
  ) {}
  session: Session | undefined = undefined;
  init: InitializeResult | undefined = undefined;
  ready: Promise<void> | undefined = undefined;
  error: string | undefined = undefined;
  /** `x-mcp-header` annotations by tool name, from the upstream's tools/list. */
  tools = new Map<string, HeaderParams>();
  /** When `tools` was last filled from a complete tools/list (0: never, or invalidated). */
  toolsLoadedAt = 0;
  toolsLoading: Promise<void> | undefined = undefined;
  /** Open subscriptions/listen streams fed from this session. */
  readonly listeners = new Set<ListenStream>();
  /** Takes the hidden session's standalone stream while anybody listens. */
  standalone: StandaloneChannel | undefined = undefined;
  /** Upstream resources/subscribe reference counts, by URI. */
  readonly resourceSubscriptions = new Map<string, number>();

  /** Nothing depends on it: no listener, no request on its way, not starting up. */
  idle(): boolean {
    const session = this.session;
    if (!session || session.closed) return true;
    if (this.init === undefined || this.listeners.size > 0 || this.toolsLoading !== undefined) return false;
    return session.inFlightCount === 0 && !session.hasLiveChannel();
  }
}

/** Captures the answer to a request the gateway itself sends on a hidden session. */
class CaptureChannel implements ClientChannel {
  readonly kind = 'streamable' as const;
  listener: ChannelListener | undefined = undefined;
  closed = false;
  readonly bufferedBytes = 0;

  constructor(
    private readonly session: Session,
    private readonly resolve: (result: Record<string, unknown>) => void,
    private readonly reject: (reason: string) => void,
    /** Notifications that reached this stream only because it was the one request in flight. */
    private readonly notification?: (message: JsonRpcNotification) => void,
  ) {}

  send(_seq: number, _stream: number, raw: string): boolean {
    this.session.ackAll(); // nothing here is ever resumed
    const m = JSON.parse(raw) as JsonRpcMessage;
    if (isNotification(m)) this.notification?.(m);
    if (!isResponse(m)) return true;
    this.closed = true;
    if ('error' in m) this.reject(m.error.message);
    else this.resolve((m.result ?? {}) as Record<string, unknown>);
    return true;
  }

  end(): void {
    if (!this.closed) this.close(0, 'the upstream did not answer');
  }

  close(_code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.reject(reason);
  }
}

/** Sends a request of the gateway's own on a hidden session; resolves with its result. */
function internalRequest(
  session: Session,
  method: string,
  params: Record<string, unknown> | undefined,
  notification?: (message: JsonRpcNotification) => void,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const channel = new CaptureChannel(session, resolve, (reason) => reject(new Error(reason)), notification);
    const stream = session.openStream(channel);
    const request: JsonRpcRequest = { jsonrpc: '2.0', id: bridgeId(), method };
    if (params !== undefined) request.params = params;
    session.receive(request, undefined, stream);
    session.sealStream(stream);
  });
}

/**
 * The hidden session's standalone stream while subscriptions are open: what the upstream sends
 * outside any request (list_changed, resources/updated) goes to the listen streams.
 */
class StandaloneChannel implements ClientChannel {
  readonly kind = 'streamable' as const;
  listener: ChannelListener | undefined = undefined;
  closed = false;
  readonly bufferedBytes = 0;

  constructor(
    private readonly handler: SessionlessHandler,
    private readonly entry: BridgeEntry,
    private readonly session: Session,
  ) {}

  send(_seq: number, _stream: number, raw: string): boolean {
    this.session.ackAll();
    const m = JSON.parse(raw) as JsonRpcMessage;
    if (isNotification(m)) {
      this.handler.upstreamNotification(this.entry, m);
    } else if (!isResponse(m)) {
      // A server→client request outside any client request: nobody can answer it in 2026-07-28.
      const req = m as JsonRpcRequest;
      this.session.receive(
        req.method === Method.Ping
          ? { jsonrpc: '2.0', id: req.id, result: {} }
          : errorResponse(req.id, ErrorCode.MethodNotFound, `Method not found: ${req.method}`),
        undefined,
        STANDALONE_STREAM,
      );
    }
    return true;
  }

  end(): void {
    this.close(0, 'the upstream session ended');
  }

  close(_code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.handler.standaloneClosed(this.entry, this, reason);
  }
}

/** One subscriptions/listen response stream. */
class ListenStream implements KeepAliveTarget {
  lastWrite = Date.now();
  ended = false;

  constructor(
    private readonly handler: SessionlessHandler,
    readonly entry: BridgeEntry,
    readonly res: ServerResponse,
    /** The listen request's id: the subscription id every message on the stream carries. */
    readonly id: JsonRpcId,
    readonly filter: AcceptedFilter,
  ) {}

  wants(message: JsonRpcNotification): boolean {
    const kind = LIST_CHANGED[message.method];
    if (kind) return this.filter[kind.field as 'toolsListChanged'] === true;
    if (message.method === RESOURCE_UPDATED) {
      const uri = (message.params as { uri?: unknown } | undefined)?.uri;
      return typeof uri === 'string' && (this.filter.resourceSubscriptions ?? []).includes(uri);
    }
    return false;
  }

  /**
   * Fan-out cannot pause the shared upstream for one listener, so a listener that does not keep
   * up is cut off once it has more than the outbox bound waiting (the session's slow-reader bound).
   */
  write(message: unknown): void {
    if (this.ended) return;
    this.lastWrite = Date.now();
    this.res.write(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
    if (this.res.writableLength > this.handler.deps.config.session.outboxMaxBytes)
      this.handler.listenerOverflow(this);
  }

  keepAlive(): void {
    if (this.ended) return;
    this.lastWrite = Date.now();
    this.res.write(': keep-alive\n\n');
  }

  /** Abnormal end: an error answer to the listen request, then the end of the stream. */
  fail(code: number, message: string): void {
    if (this.ended) return;
    this.ended = true;
    this.res.end(`event: message\ndata: ${JSON.stringify(errorResponse(this.id, code, message))}\n\n`);
  }

  /** Graceful end: the answer to the listen request, then the end of the stream. */
  finish(): void {
    if (this.ended) return;
    this.write({
      jsonrpc: '2.0',
      id: this.id,
      result: { resultType: 'complete', _meta: { [META_SUBSCRIPTION_ID]: this.id } },
    });
    this.ended = true;
    this.res.end();
  }
}

interface AcceptedFilter {
  toolsListChanged?: true;
  promptsListChanged?: true;
  resourcesListChanged?: true;
  resourceSubscriptions?: string[];
}

/** One sessionless request's response: JSON when the answer comes first, SSE (no event ids) otherwise. */
class SessionlessChannel implements ClientChannel, KeepAliveTarget {
  readonly kind = 'streamable' as const;
  listener: ChannelListener | undefined = undefined;
  closed = false;
  lastWrite = Date.now();
  private streaming = false;
  private answered = false;
  /** A write said "full": the session may have paused the upstream until this response drains. */
  private blocked = false;

  get bufferedBytes(): number {
    return this.res.writableLength;
  }

  constructor(
    private readonly handler: SessionlessHandler,
    readonly res: ServerResponse,
    readonly entry: BridgeEntry,
    readonly session: Session,
    readonly serverInfo: unknown,
    readonly method: string,
    readonly clientId: JsonRpcId,
    readonly upstreamId: string,
    readonly clientToken: string | number | undefined,
    readonly upstreamToken: string | undefined,
    readonly wantsLogs: boolean,
    readonly capabilities: Record<string, unknown>,
  ) {
    res.on('close', onSessionlessClose.bind(this));
    res.on('drain', onSessionlessDrain.bind(this));
  }

  send(_seq: number, _stream: number, raw: string): boolean {
    if (this.closed) return false;
    // Nothing here is ever resumed (2026-07-28 has no Last-Event-ID): drop what was delivered.
    this.session.ackAll();
    const m = JSON.parse(raw) as Record<string, unknown> & JsonRpcMessage;
    if (isResponse(m)) {
      m.id = this.clientId;
      const result = (m as { result?: unknown }).result;
      if (result !== null && typeof result === 'object' && !Array.isArray(result)) {
        if (this.method === 'tools/list') this.handler.noteTools(this.entry, result);
        this.decorate(result);
      }
      const error = (m as { error?: { code?: unknown } }).error;
      this.finish(JSON.stringify(m), error ? statusOfError(error.code) : 200);
      return true;
    }
    if (isNotification(m)) {
      if (m.method === Method.Progress) {
        const params = m.params as { progressToken?: unknown } | undefined;
        if (!params || this.upstreamToken === undefined || params.progressToken !== this.upstreamToken)
          return true;
        params.progressToken = this.clientToken;
      } else if (m.method === 'notifications/message') {
        // 2026-07-28: log messages only for requests that asked for them (_meta logLevel).
        if (!this.wantsLogs) return true;
      } else {
        // Only notifications about this request belong on its stream; the rest (list_changed,
        // resources/updated) reached this stream only because it was the one request in flight.
        this.handler.upstreamNotification(this.entry, m);
        return true;
      }
      return this.event(JSON.stringify(m));
    }
    this.serverRequest(m as JsonRpcRequest);
    return true;
  }

  /**
   * A server→client request on a bridged request. 2026-07-28 has no such requests on the wire
   * (they become input_required results, MRTR); the bridge does not translate them yet, so the
   * upstream gets an error, and a client that lacks the capability gets −32021.
   */
  private serverRequest(req: JsonRpcRequest): void {
    const capability = CAPABILITY_OF[req.method];
    if (req.method === Method.Ping) {
      this.session.receive({ jsonrpc: '2.0', id: req.id, result: {} }, undefined, STANDALONE_STREAM);
      return;
    }
    this.session.receive(
      errorResponse(
        req.id,
        capability ? ErrorCode.InternalError : ErrorCode.MethodNotFound,
        capability
          ? `${req.method} cannot reach a ${SESSIONLESS_PROTOCOL} client through this gateway (multi round-trip requests are not bridged)`
          : `Method not found: ${req.method}`,
      ),
      undefined,
      STANDALONE_STREAM,
    );
    if (capability && this.capabilities[capability] === undefined) {
      this.handler.deps.metrics.error('missing_client_capability');
      this.cancelUpstream('the client lacks a required capability');
      this.finish(
        JSON.stringify(
          errorResponse(
            this.clientId,
            ErrorCode.MissingClientCapability,
            `Missing required client capability: ${capability}`,
            {
              requiredCapabilities: { [capability]: {} },
            },
          ),
        ),
        400,
      );
    }
  }

  /** Adds what 2026-07-28 requires of every result that older upstreams do not send. */
  private decorate(result: object): void {
    const r = result as Record<string, unknown>;
    if (r.resultType === undefined) r.resultType = 'complete';
    if (this.serverInfo !== undefined) {
      let meta = r._meta as Record<string, unknown> | undefined;
      if (meta === null || typeof meta !== 'object') meta = r._meta = {};
      if (meta[META_SERVER_INFO] === undefined) meta[META_SERVER_INFO] = this.serverInfo;
    }
    if (CACHEABLE.has(this.method)) {
      if (r.ttlMs === undefined) r.ttlMs = 0;
      if (r.cacheScope === undefined) r.cacheScope = 'private';
    }
  }

  private event(data: string): boolean {
    const res = this.res;
    if (!this.streaming) {
      this.streaming = true;
      res.writeHead(200, SSE_HEADERS);
      this.handler.deps.keepAlive?.add(this);
    }
    this.lastWrite = Date.now();
    if (res.write(`event: message\ndata: ${data}\n\n`)) return true;
    this.blocked = true;
    return false;
  }

  /**
   * The response took what was buffered, or no longer takes anything from the session (answered
   * or gone): let the session resume the upstream it may have paused for this response. Goes to
   * the session directly: after the answer the session has already let go of this channel.
   */
  unblock(): void {
    if (!this.blocked) return;
    this.blocked = false;
    this.session.channelDrained(this);
  }

  keepAlive(): void {
    if (!this.closed && this.streaming) {
      this.lastWrite = Date.now();
      this.res.write(': keep-alive\n\n');
    }
  }

  /** Writes the final answer and ends the response (the answer terminates the stream). */
  private finish(body: string, status: number): void {
    if (this.answered) return;
    this.answered = true;
    this.closed = true;
    const res = this.res;
    if (this.streaming) {
      this.handler.deps.keepAlive?.delete(this);
      res.end(`event: message\ndata: ${body}\n\n`);
    } else if (!res.headersSent) {
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
      });
      res.end(body);
    } else {
      res.end();
    }
    // What is still buffered is this response's own tail (no 'drain' comes after end()): the
    // upstream need not wait for it.
    this.unblock();
  }

  end(): void {
    // The session ends the stream right after the answer, which finish() already wrote.
    if (!this.answered) this.close(502, 'the upstream ended the request without an answer');
  }

  close(code: number, reason: string): void {
    if (this.answered) return;
    const status = code >= 400 && code < 600 ? code : 502;
    this.finish(JSON.stringify(errorResponse(this.clientId, ErrorCode.UpstreamUnavailable, reason)), status);
  }

  /** The client went away before the answer: that is the cancellation signal in 2026-07-28. */
  clientClosed(): void {
    this.handler.deps.keepAlive?.delete(this);
    this.unblock();
    if (this.answered) return;
    this.answered = true;
    this.closed = true;
    this.handler.deps.metrics.error('client_cancelled');
    this.cancelUpstream('the client closed the response stream');
  }

  private cancelUpstream(reason: string): void {
    const listener = this.listener;
    this.listener = undefined;
    listener?.channelClosed(this);
    // A cancelled request gets no answer from a conforming server: stop waiting for it so it does
    // not count against the in-flight bound forever, and tell the upstream. A late answer is dropped.
    this.session.abandonRequest(this.upstreamId, reason);
  }
}

function onSessionlessClose(this: SessionlessChannel): void {
  this.clientClosed();
}

function onSessionlessDrain(this: SessionlessChannel): void {
  this.unblock();
}

function sweepBridges(handler: SessionlessHandler): void {
  handler.sweep();
}

/** Handles POSTs whose MCP-Protocol-Version is 2026-07-28. */
export class SessionlessHandler {
  /** Hidden sessions by client id and service, least recently used first. */
  private readonly bridges = new Map<string, BridgeEntry>();
  /** One shared timer drops the bridges whose hidden session ended (idle expiry, upstream gone). */
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly owner: StreamableHttpHandler) {
    this.sweeper = setInterval(sweepBridges, owner.deps.config.session.sweepIntervalMs, this);
    this.sweeper.unref();
  }

  /** Shutdown: the sessions themselves are ended by the session registry. */
  stop(): void {
    clearInterval(this.sweeper);
  }

  /** Forgets the bridges whose hidden session has ended. */
  sweep(): void {
    for (const [key, entry] of this.bridges) {
      if (entry.session?.closed) this.bridges.delete(key);
    }
  }

  get deps() {
    return this.owner.deps;
  }

  /** Number of hidden upstream sessions (tests, metrics). */
  get bridgeCount(): number {
    return this.bridges.size;
  }

  /** `clientId`: the admitted identity's (authentication on), else the one the request claims. */
  post(
    service: string,
    headers: IncomingHttpHeaders,
    body: Buffer | undefined,
    res: ServerResponse,
    clientId: string = clientIdFrom(headers),
    identity?: Identity,
  ): void {
    const parsed = parseJsonRpc(body ? body.toString('utf8') : '', this.deps.config.maxJsonDepth);
    if (!parsed.ok) {
      const code = parsed.error.error.code;
      refuse(this.deps, res, 400, code, refusalKind(code), parsed.error.error.message, {
        id: parsed.error.id,
      });
      return;
    }
    if (parsed.batch) {
      refuse(
        this.deps,
        res,
        400,
        ErrorCode.InvalidRequest,
        'batch_not_allowed',
        `Invalid Request: JSON-RPC batches are not allowed in protocol version ${SESSIONLESS_PROTOCOL}`,
      );
      return;
    }
    const message = parsed.messages[0];
    if (isResponse(message)) {
      refuse(
        this.deps,
        res,
        400,
        ErrorCode.InvalidRequest,
        'invalid_request',
        `Invalid Request: clients do not send responses in protocol version ${SESSIONLESS_PROTOCOL}`,
      );
      return;
    }
    if (isNotification(message)) {
      // No client notification means anything here (cancellation is closing the stream): accept and drop.
      sendStatus(res, 202);
      return;
    }
    const request = message as JsonRpcRequest;
    if (!this.checkHeaders(request, headers, res)) return;
    const meta = metaOf(request);
    if (REMOVED_METHODS.has(request.method)) {
      refuse(
        this.deps,
        res,
        404,
        ErrorCode.MethodNotFound,
        'method_not_found',
        `Method not found: ${request.method} is not available in protocol version ${SESSIONLESS_PROTOCOL}`,
        { id: request.id },
      );
      return;
    }

    if (this.owner.refusedByPolicy(clientId, parsed.messages, false, headers, res)) return;
    const admission = this.deps.admission;
    const live = this.bridges.get(`${clientId}\u0000${service}`);
    if (admission !== undefined && !(live?.session && !live.session.closed && live.error === undefined)) {
      // A new hidden session for this client: admitted once (live client policy, teams' checks, S5).
      const req = { transport: 'streamable' as const, headers, socket: res.socket ?? undefined, service };
      const admitted = admission
        .admitSession(identity ?? { clientId, via: 'none', scopes: [] }, req)
        .then((refused) => {
          if (res.destroyed || res.writableEnded) return;
          if (refused) admission.sendHttp(res, refused, req);
          else this.serve(request, meta!, service, headers, res, clientId);
        });
      admitted.catch((err: unknown) => this.owner.internalError(res, err));
      return;
    }
    this.serve(request, meta!, service, headers, res, clientId);
  }

  private serve(
    request: JsonRpcRequest,
    meta: Record<string, unknown>,
    service: string,
    headers: IncomingHttpHeaders,
    res: ServerResponse,
    clientId: string,
  ): void {
    let entry: BridgeEntry | undefined;
    try {
      entry = this.entryFor(clientId, service, meta);
    } catch (err) {
      if (refusedForCapacity(res, err, this.deps.metrics)) return;
      throw err;
    }
    if (!entry) {
      refuse(
        this.deps,
        res,
        503,
        ErrorCode.Overloaded,
        'overloaded',
        `Overloaded: ${this.bridges.size} sessionless bridges are busy (SESSIONLESS_MAX_BRIDGES)`,
        { id: request.id, data: { retryAfterMs: 1000 }, headers: { 'retry-after': '1' } },
      );
      return;
    }
    this.owner.track(res);
    if (entry.init && entry.session && !entry.session.closed) {
      this.run(entry, request, meta!, headers, res);
      return;
    }
    const served = entry.ready!.then(
      () => {
        if (res.destroyed || res.writableEnded) return; // gave up while the upstream was starting
        this.run(entry, request, meta!, headers, res);
      },
      () => {
        this.deps.metrics.error('upstream_unavailable');
        sendJson(
          res,
          502,
          errorResponse(
            request.id,
            ErrorCode.UpstreamUnavailable,
            `Upstream unavailable: ${entry.error ?? 'unknown error'}`,
          ),
        );
      },
    );
    // run() serves the request: what it throws would otherwise be an unhandled rejection.
    served.catch((err: unknown) => this.owner.internalError(res, err));
  }

  /** Mcp-Method, Mcp-Name and the per-request `_meta` checks; false after sending the refusal. */
  private checkHeaders(request: JsonRpcRequest, headers: IncomingHttpHeaders, res: ServerResponse): boolean {
    const id = request.id;
    const mismatch = (message: string) => {
      refuse(
        this.deps,
        res,
        400,
        ErrorCode.HeaderMismatch,
        'header_mismatch',
        `Header mismatch: ${message}`,
        { id },
      );
      return false;
    };
    const methodHeader = headerValue(headers[Header.Method]);
    if (methodHeader === undefined) return mismatch('the Mcp-Method header is required');
    if (methodHeader !== request.method) {
      return mismatch(
        `Mcp-Method header value '${methodHeader}' does not match body value '${request.method}'`,
      );
    }
    const field = NAME_FIELD[request.method];
    if (field !== undefined) {
      const nameHeader = headerValue(headers[Header.Name]);
      const params = request.params as Record<string, unknown> | undefined;
      const bodyValue = params && !Array.isArray(params) ? params[field] : undefined;
      if (nameHeader === undefined) return mismatch(`the Mcp-Name header is required for ${request.method}`);
      const decoded = decodeHeaderValue(nameHeader);
      if (decoded === undefined) return mismatch('the Mcp-Name header value is malformed');
      if (decoded !== bodyValue) {
        return mismatch(
          `Mcp-Name header value '${decoded}' does not match body value '${String(bodyValue)}'`,
        );
      }
    }
    const meta = metaOf(request);
    // Each member of its schema type: the hidden session's initialize is made of them.
    const reason = checkRequestMeta(meta);
    if (reason !== undefined) {
      refuse(this.deps, res, 400, ErrorCode.InvalidParams, 'invalid_params', `Invalid params: ${reason}`, {
        id,
      });
      return false;
    }
    const version = meta![META_PROTOCOL_VERSION];
    if (version !== SESSIONLESS_PROTOCOL) {
      return mismatch(
        `MCP-Protocol-Version header value '${SESSIONLESS_PROTOCOL}' does not match _meta value '${version}'`,
      );
    }
    return true;
  }

  /**
   * The hidden upstream session for (client, service), created and initialized on first use;
   * undefined when the bridges are at their bound and none of them is idle.
   */
  private entryFor(
    clientId: string,
    service: string,
    meta: Record<string, unknown>,
  ): BridgeEntry | undefined {
    const key = `${clientId}\u0000${service}`;
    let entry = this.bridges.get(key);
    if (entry && entry.session && !entry.session.closed && entry.error === undefined) {
      // Most recently used last: eviction takes the oldest idle bridge from the front.
      this.bridges.delete(key);
      this.bridges.set(key, entry);
      return entry;
    }
    if (entry) this.bridges.delete(key);
    if (this.bridges.size >= this.deps.config.sessionlessMaxBridges && !this.evictIdle()) return undefined;
    entry = new BridgeEntry(key);
    this.bridges.set(key, entry);
    const session = this.deps.sessions.create(clientId, service, 'streamable');
    entry.session = session;
    const target = entry;
    entry.ready = new Promise<InitializeResult>((resolve, reject) => {
      const channel = new CaptureChannel(session, resolve, reject);
      const stream = session.openStream(channel);
      session.receive(initializeRequest(meta), undefined, stream);
      session.sealStream(stream);
    }).then(
      (result) => {
        target.init = result;
        session.receive({ jsonrpc: '2.0', method: Method.Initialized }, undefined, STANDALONE_STREAM);
        session.ackAll();
      },
      (reason: string) => {
        target.error = reason;
        if (this.bridges.get(key) === target) this.bridges.delete(key);
        this.deps.sessions.end(session, `bridge initialize failed: ${reason}`);
        throw new Error(reason);
      },
    );
    // Waiters attach their own handlers; this one only keeps a failure from being "unhandled".
    entry.ready.catch(() => undefined);
    return entry;
  }

  /** Ends the least recently used idle bridge and its hidden session; false when none is idle. */
  private evictIdle(): boolean {
    for (const [key, entry] of this.bridges) {
      if (!entry.idle()) continue;
      this.bridges.delete(key);
      const session = entry.session;
      if (session && !session.closed) {
        this.deps.metrics.error('bridge_evicted');
        this.deps.sessions.end(session, 'sessionless bridge evicted (SESSIONLESS_MAX_BRIDGES)');
      }
      return true;
    }
    return false;
  }

  private run(
    entry: BridgeEntry,
    request: JsonRpcRequest,
    meta: Record<string, unknown>,
    headers: IncomingHttpHeaders,
    res: ServerResponse,
  ): void {
    const session = entry.session!;
    if (session.closed) {
      sendJson(res, 502, errorResponse(request.id, ErrorCode.UpstreamUnavailable, 'Upstream session closed'));
      return;
    }
    if (request.method === Method.Discover) {
      sendJson(res, 200, { jsonrpc: '2.0', id: request.id, result: this.discoverResult(entry.init!) });
      return;
    }
    if (request.method === 'subscriptions/listen') {
      this.listen(entry, request, res);
      return;
    }
    if (request.method === 'tools/call') {
      this.checkToolHeaders(entry, request, headers, res, () =>
        this.forward(entry, request, meta, headers, res),
      );
      return;
    }
    this.forward(entry, request, meta, headers, res);
  }

  /** Sends a client request up the hidden session; its answer comes back on its own channel. */
  private forward(
    entry: BridgeEntry,
    request: JsonRpcRequest,
    meta: Record<string, unknown>,
    headers: IncomingHttpHeaders,
    res: ServerResponse,
  ): void {
    const session = entry.session!;
    if (session.closed) {
      sendJson(res, 502, errorResponse(request.id, ErrorCode.UpstreamUnavailable, 'Upstream session closed'));
      return;
    }
    const upstreamId = bridgeId();
    const clientToken = meta.progressToken as string | number | undefined;
    const upstreamToken = clientToken === undefined ? undefined : bridgeId();
    const params = request.params as Record<string, unknown>;
    const upstreamMeta = upstreamToken === undefined ? meta : { ...meta, progressToken: upstreamToken };
    const upstream: JsonRpcRequest = {
      jsonrpc: '2.0',
      id: upstreamId,
      method: request.method,
      params: { ...params, _meta: upstreamMeta },
    };
    // Mcp-Param-* headers travel with this request to HTTP upstreams (other transports have no headers).
    const forwarded = paramHeadersOf(headers);
    const channel = new SessionlessChannel(
      this,
      res,
      entry,
      session,
      entry.init!.serverInfo,
      request.method,
      request.id,
      upstreamId,
      clientToken,
      upstreamToken,
      meta[META_LOG_LEVEL] !== undefined,
      meta[META_CLIENT_CAPABILITIES] as Record<string, unknown>,
    );
    const stream = session.openStream(channel);
    // The bridged session is shared: the caller's headers (traceparent, x-request-id) only for this call.
    session.incoming = headers;
    session.receive(upstream, JSON.stringify(upstream), stream, forwarded);
    session.incoming = undefined;
    session.sealStream(stream);
  }

  // ------------------------------------------------------------ Mcp-Param-* (x-mcp-header)

  /**
   * Checks a tools/call's Mcp-Param-* headers against the tool's `x-mcp-header` annotations,
   * from the upstream's tools/list (cached per hidden session, refreshed when stale, when the
   * upstream says the list changed, and before refusing on a cached schema). Continues with
   * `then` when they agree or the tool is unknown (the upstream answers that); refuses 400 / −32020 otherwise.
   */
  private checkToolHeaders(
    entry: BridgeEntry,
    request: JsonRpcRequest,
    headers: IncomingHttpHeaders,
    res: ServerResponse,
    then: () => void,
  ): void {
    const params = request.params as { name?: unknown; arguments?: unknown };
    const name = params.name;
    if (typeof name !== 'string') {
      then();
      return;
    }
    const verdict = (): string | undefined => {
      const spec = entry.tools.get(name);
      return spec?.valid ? checkParamHeaders(spec.params, params.arguments, headers) : undefined;
    };
    const age = Date.now() - entry.toolsLoadedAt;
    if (entry.toolsLoadedAt > 0 && age < TOOL_SCHEMA_TTL_MS) {
      const problem = verdict();
      // A refusal on a schema more than a second old is re-checked against a fresh list first.
      if (problem === undefined || age < 1000) {
        if (problem === undefined) then();
        else this.headerMismatch(res, request.id, problem);
        return;
      }
      entry.toolsLoadedAt = 0;
    }
    const checked = this.loadTools(entry).then(
      () => {
        if (res.destroyed || res.writableEnded) return;
        const problem = verdict();
        if (problem === undefined) then();
        else this.headerMismatch(res, request.id, problem);
      },
      () => {
        // Without the schema there is nothing to hold the headers against: the upstream decides.
        if (!res.destroyed && !res.writableEnded) then();
      },
    );
    checked.catch((err: unknown) => this.owner.internalError(res, err));
  }

  private headerMismatch(res: ServerResponse, id: JsonRpcId, problem: string): void {
    refuse(this.deps, res, 400, ErrorCode.HeaderMismatch, 'header_mismatch', `Header mismatch: ${problem}`, {
      id,
    });
  }

  /** Reads the upstream's whole tools/list on the hidden session (once at a time). */
  private loadTools(entry: BridgeEntry): Promise<void> {
    if (entry.toolsLoading) return entry.toolsLoading;
    const session = entry.session!;
    const load = async () => {
      const tools = new Map<string, HeaderParams>();
      let cursor: unknown = undefined;
      for (let page = 0; page < MAX_TOOL_PAGES; page++) {
        const result = await internalRequest(
          session,
          'tools/list',
          typeof cursor === 'string' ? { cursor } : undefined,
          (m) => this.upstreamNotification(entry, m),
        );
        collectTools(tools, result);
        cursor = result.nextCursor;
        if (typeof cursor !== 'string' || cursor === '') break;
      }
      entry.tools = tools;
      entry.toolsLoadedAt = Date.now();
    };
    const loading = load().finally(() => {
      if (entry.toolsLoading === loading) entry.toolsLoading = undefined;
    });
    entry.toolsLoading = loading;
    return loading;
  }

  /** A tools/list page a client asked for: its schemas are as good as our own reading. */
  noteTools(entry: BridgeEntry, result: object): void {
    collectTools(entry.tools, result as Record<string, unknown>);
  }

  // ------------------------------------------------------------ subscriptions/listen

  /**
   * subscriptions/listen on a bridged upstream: the acknowledgment (with the filter the
   * upstream's capabilities allow) first, then every matching notification the hidden session
   * receives, tagged with the subscription id, until the client closes the stream. Resource
   * subscriptions become upstream resources/subscribe calls, shared between listeners.
   */
  private listen(entry: BridgeEntry, request: JsonRpcRequest, res: ServerResponse): void {
    const requested = (request.params as { notifications?: unknown }).notifications;
    if (requested === null || typeof requested !== 'object' || Array.isArray(requested)) {
      refuse(
        this.deps,
        res,
        400,
        ErrorCode.InvalidParams,
        'invalid_params',
        'Invalid params: subscriptions/listen requires a "notifications" filter object',
        { id: request.id },
      );
      return;
    }
    const wanted = requested as Record<string, unknown>;
    const caps = entry.init!.capabilities ?? {};
    const capability = (name: string) => {
      const c = caps[name];
      return c !== null && typeof c === 'object' ? (c as Record<string, unknown>) : undefined;
    };
    const filter: AcceptedFilter = {};
    for (const { field, capability: cap } of Object.values(LIST_CHANGED)) {
      if (wanted[field] === true && capability(cap)?.listChanged === true) {
        filter[field as 'toolsListChanged'] = true;
      }
    }
    const uris = wanted.resourceSubscriptions;
    const subscribe =
      Array.isArray(uris) && capability('resources')?.subscribe === true
        ? [...new Set(uris.filter((u): u is string => typeof u === 'string'))]
        : [];
    Promise.all(
      subscribe.map((uri) => this.subscribeResource(entry, uri).then((ok) => (ok ? uri : undefined))),
    )
      .then((results) => {
        const granted = results.filter((u): u is string => u !== undefined);
        if (res.destroyed || res.writableEnded || entry.session!.closed) {
          for (const uri of granted) this.unsubscribeResource(entry, uri);
          if (!res.destroyed && !res.writableEnded) {
            sendJson(
              res,
              502,
              errorResponse(request.id, ErrorCode.UpstreamUnavailable, 'Upstream session closed'),
            );
          }
          return;
        }
        if (Array.isArray(uris) && capability('resources')?.subscribe === true) {
          filter.resourceSubscriptions = granted;
        }
        this.openListen(entry, request.id, filter, res);
      })
      .catch((err: unknown) => this.owner.internalError(res, err));
  }

  private openListen(entry: BridgeEntry, id: JsonRpcId, filter: AcceptedFilter, res: ServerResponse): void {
    const stream = new ListenStream(this, entry, res, id, filter);
    res.writeHead(200, SSE_HEADERS);
    entry.listeners.add(stream);
    this.deps.keepAlive?.add(stream);
    this.attachStandalone(entry);
    res.on('close', () => {
      stream.ended = true;
      this.dropListener(stream);
    });
    stream.write({
      jsonrpc: '2.0',
      method: 'notifications/subscriptions/acknowledged',
      params: { _meta: { [META_SUBSCRIPTION_ID]: id }, notifications: filter },
    });
  }

  /** A listen stream ended (closed by the client or cut off): release what it held. */
  private dropListener(stream: ListenStream): void {
    const entry = stream.entry;
    this.deps.keepAlive?.delete(stream);
    if (!entry.listeners.delete(stream)) return;
    for (const uri of stream.filter.resourceSubscriptions ?? []) this.unsubscribeResource(entry, uri);
    if (entry.listeners.size === 0) this.detachStandalone(entry);
  }

  /** A listener too slow for what it subscribed to: ended with an error it can read, counted. */
  listenerOverflow(stream: ListenStream): void {
    const waiting = stream.res.writableLength;
    const bound = this.deps.config.session.outboxMaxBytes;
    this.deps.metrics.error('listener_overflow');
    stream.fail(
      ErrorCode.InternalError,
      `Subscription ended: the client reads too slowly (${waiting} bytes waiting, bound ${bound}, OUTBOX_MAX_BYTES)`,
    );
    this.dropListener(stream);
  }

  private attachStandalone(entry: BridgeEntry): void {
    const session = entry.session!;
    if ((entry.standalone && !entry.standalone.closed) || session.closed) return;
    // What waited for a standalone stream predates every subscription: none of it is due, so
    // attaching replays nothing.
    session.ackAll();
    const channel = new StandaloneChannel(this, entry, session);
    entry.standalone = channel;
    session.attachStandalone(channel);
  }

  /** The last listener left: give the standalone stream back, so the idle session can expire. */
  private detachStandalone(entry: BridgeEntry): void {
    const channel = entry.standalone;
    entry.standalone = undefined;
    if (!channel || channel.closed) return;
    channel.closed = true;
    entry.session!.detachStandalone(channel);
  }

  /** The hidden session ended under its listeners: end each subscription gracefully. */
  standaloneClosed(entry: BridgeEntry, channel: StandaloneChannel, _reason: string): void {
    if (entry.standalone === channel) entry.standalone = undefined;
    for (const stream of entry.listeners) {
      this.deps.keepAlive?.delete(stream);
      stream.finish();
    }
    entry.listeners.clear();
    entry.resourceSubscriptions.clear();
  }

  /** A notification from the upstream that no single request owns. */
  upstreamNotification(entry: BridgeEntry, message: JsonRpcNotification): void {
    if (message.method === 'notifications/tools/list_changed') entry.toolsLoadedAt = 0;
    if (entry.listeners.size === 0) return;
    const params = (
      message.params !== null && typeof message.params === 'object' && !Array.isArray(message.params)
        ? message.params
        : {}
    ) as Record<string, unknown>;
    const meta = params._meta !== null && typeof params._meta === 'object' ? params._meta : {};
    for (const stream of entry.listeners) {
      if (!stream.wants(message)) continue;
      stream.write({
        jsonrpc: '2.0',
        method: message.method,
        params: { ...params, _meta: { ...meta, [META_SUBSCRIPTION_ID]: stream.id } },
      });
    }
  }

  /** Upstream resources/subscribe for `uri`, shared by every listener of the session. */
  private subscribeResource(entry: BridgeEntry, uri: string): Promise<boolean> {
    const count = entry.resourceSubscriptions.get(uri) ?? 0;
    entry.resourceSubscriptions.set(uri, count + 1);
    if (count > 0) return Promise.resolve(true);
    return internalRequest(entry.session!, 'resources/subscribe', { uri }, (m) =>
      this.upstreamNotification(entry, m),
    ).then(
      () => true,
      () => {
        this.unsubscribeResource(entry, uri, false);
        return false;
      },
    );
  }

  private unsubscribeResource(entry: BridgeEntry, uri: string, upstream = true): void {
    const count = entry.resourceSubscriptions.get(uri);
    if (count === undefined) return;
    if (count > 1) {
      entry.resourceSubscriptions.set(uri, count - 1);
      return;
    }
    entry.resourceSubscriptions.delete(uri);
    const session = entry.session!;
    if (upstream && !session.closed) {
      internalRequest(session, 'resources/unsubscribe', { uri }).catch(() => undefined);
    }
  }

  private discoverResult(init: InitializeResult): Record<string, unknown> {
    const result: Record<string, unknown> = {
      resultType: 'complete',
      supportedVersions: this.owner.versions,
      capabilities: init.capabilities ?? {},
      _meta: init.serverInfo === undefined ? {} : { [META_SERVER_INFO]: init.serverInfo },
      ttlMs: 0,
      cacheScope: 'private',
    };
    if (typeof init.instructions === 'string') result.instructions = init.instructions;
    return result;
  }
}

/** Adds the `x-mcp-header` annotations of a tools/list page's tools to `into`. */
function collectTools(into: Map<string, HeaderParams>, result: Record<string, unknown>): void {
  const tools = result.tools;
  if (!Array.isArray(tools)) return;
  for (const tool of tools as Array<{ name?: unknown; inputSchema?: unknown }>) {
    if (tool !== null && typeof tool === 'object' && typeof tool.name === 'string') {
      into.set(tool.name, headerParamsOf(tool.inputSchema));
    }
  }
}

function metaOf(request: JsonRpcRequest): Record<string, unknown> | undefined {
  const params = request.params as { _meta?: unknown } | undefined;
  const meta = params && !Array.isArray(params) ? params._meta : undefined;
  return meta !== null && typeof meta === 'object' && !Array.isArray(meta)
    ? (meta as Record<string, unknown>)
    : undefined;
}

function paramHeadersOf(headers: IncomingHttpHeaders): Record<string, string> | undefined {
  let out: Record<string, string> | undefined;
  for (const name in headers) {
    if (!name.startsWith(Header.ParamPrefix)) continue;
    const value = headerValue(headers[name]);
    if (value === undefined) continue;
    (out ??= {})[name] = value;
  }
  return out;
}

/**
 * The initialize the gateway sends for a hidden session, from the request's `_meta` (checked by
 * checkRequestMeta). Client info comes from the request; of its capabilities, those that need
 * server→client requests (sampling, elicitation, roots) are withheld: the bridge cannot relay
 * such requests to a 2026-07-28 client, and a server that knows that refuses cleanly instead of
 * waiting for an answer that never comes. So is `tasks`, which 2026-07-28 does not define (tasks
 * are an extension there) and which would claim task-augmented server→client requests upstream.
 */
function initializeRequest(meta: Record<string, unknown>): JsonRpcRequest {
  const caps = { ...(meta[META_CLIENT_CAPABILITIES] as Record<string, unknown>) };
  delete caps.sampling;
  delete caps.elicitation;
  delete caps.roots;
  delete caps.tasks;
  const info = meta[META_CLIENT_INFO];
  return {
    jsonrpc: '2.0',
    id: bridgeId(),
    method: Method.Initialize,
    params: {
      protocolVersion: LATEST_SESSION_PROTOCOL,
      capabilities: caps,
      clientInfo: info ?? { name: 'mcp-gateway-sessionless-bridge', version: '0.1.0' },
    },
  };
}
