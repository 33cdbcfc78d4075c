import { randomBytes } from 'node:crypto';
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
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
} from '../../../libs/protocol/src';
import { RequestMultiplexer } from '../../pool/request-multiplexer';
import { STANDALONE_STREAM } from '../../session/session';
import { whenAdmitted } from '../../policy/admission';
import { isRefusal, type Identity } from '../../policy/identity';
import { clientIdFrom } from '../../core/client-id';
import { refusedForCapacity } from '../http/capacity-reply';
import { sendJson, sendRefusal, sendStatus } from '../http/http-reply';
import { decodeHeaderValue } from './param-headers';
import { BridgeEntry, internalRequest, needsLane, quiet, type InitializeResult } from './sessionless-bridge';
import { paramsDigest, RequestStateCodec } from './request-state';
import { META_SERVER_INFO, SessionlessChannel, type SessionlessChannelHost } from './sessionless-channel';
import { INPUT_METHODS, InputFlow, InputFlows, relatedFromMeta } from './sessionless-input';
import { SessionlessSubscriptions, type SubscriptionsHost } from './sessionless-listen';
import { ToolHeaderCheck, type ToolCheckHost } from './sessionless-tools';
import { headerValue, refuse, type StreamableHttpDeps } from './streamable-http-deps';

/**
 * MCP 2026-07-28 ("modern", sessionless) Streamable HTTP, bridged to upstreams that speak the
 * initialize-based revisions.
 *
 * Every request stands alone: it carries its protocol version and client capabilities in
 * `_meta` and mirrors `method` / `params.name|uri` in the Mcp-Method / Mcp-Name headers, which an
 * intermediary must check against the body (−32020 on a mismatch). The gateway keeps one hidden
 * Session per (client id, service), initialized by the gateway itself, and runs each request on
 * it as its own stream. That Session is an ordinary one — metrics, tracing, the message policy's
 * list filtering, in-flight bounds, backpressure, request timeouts — and reaches the upstream
 * through a port from the port factory like any session (`dedicated`, or `pooled`: then the
 * bridge's requests share the pool's upstream sessions). Request ids and progress tokens are
 * remapped to gateway-unique values by the pool's request multiplexer (independent requests all
 * start at id 1) and restored on the way down. Closing the response before the answer cancels
 * the request upstream.
 *
 * tools/call is also checked against the tool's `x-mcp-header` annotations (sessionless-tools.ts);
 * subscriptions/listen is served by the bridge (sessionless-listen.ts).
 *
 * The folder, top to bottom (each file imports only the ones below it):
 * - streamable-http.handler.ts — the entry: every request on /mcp; hands 2026-07-28 POSTs here;
 * - sessionless.handler.ts (this file) — the bridge: hidden sessions by client and service;
 *   implements the host interfaces its parts declare (SessionlessOwner is what it needs above);
 * - sessionless-channel.ts — one request's response (the per-request channel);
 *   sessionless-tools.ts, sessionless-listen.ts — tools/call header checks, subscriptions/listen;
 * - sessionless-bridge.ts — one hidden session's entry and the gateway's own requests on it;
 *   sessionless-input.ts, request-state.ts, param-headers.ts, streamable-http-deps.ts — leaves.
 */

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

/**
 * What the bridge needs of the endpoint that hands it the 2026-07-28 POSTs
 * (StreamableHttpHandler, which implements it): the bridge sits below the route handler and
 * reaches back only through this.
 */
export interface SessionlessOwner {
  readonly deps: StreamableHttpDeps;
  /** Versions the endpoint accepts in MCP-Protocol-Version, newest first (server/discover lists them). */
  readonly versions: readonly string[];
  /** Keeps a response in the endpoint's live set until it closes, so shutdown can end it. */
  track(res: ServerResponse): void;
  /** The endpoint's error boundary: answers, logs and counts an unexpected failure. */
  internalError(res: ServerResponse, err: unknown): void;
  /** The per-message policy: true after answering a refused message. */
  refusedByPolicy(
    clientId: string,
    messages: readonly JsonRpcMessage[],
    batch: boolean,
    headers: IncomingHttpHeaders,
    res: ServerResponse,
  ): boolean;
}

function sweepBridges(handler: SessionlessHandler): void {
  handler.sweep();
}

/** Handles POSTs whose MCP-Protocol-Version is 2026-07-28. */
export class SessionlessHandler implements SessionlessChannelHost, SubscriptionsHost, ToolCheckHost {
  /**
   * The bridge's requests on its hidden sessions, by gateway id (owners: their response
   * streams); also runs the gateway's own (initialize, tools/list, resources/subscribe).
   */
  readonly requests = new RequestMultiplexer<SessionlessChannel>(`sl-${process.pid.toString(36)}-`);
  readonly tools = new ToolHeaderCheck(this);
  readonly subscriptions = new SessionlessSubscriptions(this);
  /** Requests parked for an input_required retry (multi-round-trip requests). */
  readonly inputs: InputFlows<SessionlessChannel>;
  /** Hidden sessions by client id and service, least recently used first. */
  private readonly bridges = new Map<string, BridgeEntry>();
  /** One shared timer drops the bridges whose hidden session ended (idle expiry, upstream gone). */
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly owner: SessionlessOwner) {
    const input = owner.deps.config.sessionlessInput;
    // The node id in each state tells a retry that reached the wrong node where its request is parked.
    this.inputs = new InputFlows<SessionlessChannel>(
      new RequestStateCodec(input.stateKey, randomBytes(6).toString('base64url')),
      input,
    );
    this.sweeper = setInterval(sweepBridges, owner.deps.config.session.sweepIntervalMs, this);
    this.sweeper.unref();
  }

  /** Shutdown: the sessions themselves are ended by the session registry. */
  stop(): void {
    clearInterval(this.sweeper);
    this.inputs.stop();
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

  /** One error boundary for what goes wrong after a request was accepted. */
  internalError(res: ServerResponse, err: unknown): void {
    this.owner.internalError(res, err);
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
      whenAdmitted(
        admission.admitConnection(req, {
          newSession: true,
          identity: identity ?? { clientId, via: 'none', scopes: [] },
        }),
        (verdict) => {
          if (res.destroyed || res.writableEnded) return;
          if (isRefusal(verdict)) sendRefusal(res, verdict);
          else this.serve(request, meta!, service, headers, res, clientId);
        },
        (err) => this.owner.internalError(res, err),
      );
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
      if (entry && needsLane(request) && !quiet(entry))
        entry = this.quietLane(clientId, service, meta) ?? entry;
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
    entry.starting++;
    const served = entry.ready!.then(
      () => {
        entry.starting--;
        if (res.destroyed || res.writableEnded) return; // gave up while the upstream was starting
        this.run(entry, request, meta!, headers, res);
      },
      () => {
        entry.starting--;
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
    lane = 0,
  ): BridgeEntry | undefined {
    const principal = `${clientId}\u0000${service}`;
    const key = lane === 0 ? principal : `${principal}\u0000${lane}`;
    let entry = this.bridges.get(key);
    if (entry && entry.session && !entry.session.closed && entry.error === undefined) {
      // Most recently used last: eviction takes the oldest idle bridge from the front.
      this.bridges.delete(key);
      this.bridges.set(key, entry);
      return entry;
    }
    if (entry) this.bridges.delete(key);
    if (this.bridges.size >= this.deps.config.sessionlessMaxBridges && !this.evictIdle()) return undefined;
    entry = new BridgeEntry(key, principal);
    this.bridges.set(key, entry);
    const session = this.deps.sessions.create(clientId, service, 'streamable');
    // Several requests in flight on a stdio upstream: a question names its request by a tag, or
    // belongs to the one request in flight that may ask (the others are lists and the like).
    const target = entry;
    session.relatedOf = (message) => relatedFromMeta(message) ?? target.soleInputRequest();
    entry.session = session;
    entry.ready = internalRequest(this.requests, session, Method.Initialize, initializeParams(meta)).then(
      (result) => {
        target.init = result as InitializeResult;
        session.receive({ jsonrpc: '2.0', method: Method.Initialized }, undefined, STANDALONE_STREAM);
        session.ackAll();
      },
      (err: Error) => {
        const reason = err.message;
        target.error = reason;
        if (this.bridges.get(key) === target) this.bridges.delete(key);
        this.deps.sessions.end(session, `bridge initialize failed: ${reason}`);
        throw err;
      },
    );
    // Waiters attach their own handlers; this one only keeps a failure from being "unhandled".
    entry.ready.catch(() => undefined);
    return entry;
  }

  /**
   * Another hidden session of the same client for a request that may ask for input while the
   * first is busy: a stdio upstream's questions name no request, so they can only be told apart
   * with one request in flight per session. A quiet lane (or a new one, at most one per request
   * that may wait for input, SESSIONLESS_INPUT_MAX_PER_CLIENT); undefined when all are busy.
   */
  private quietLane(
    clientId: string,
    service: string,
    meta: Record<string, unknown>,
  ): BridgeEntry | undefined {
    const principal = `${clientId}\u0000${service}`;
    const lanes = this.deps.config.sessionlessInput.maxPerClient;
    let free = 0;
    for (let lane = 1; lane <= lanes; lane++) {
      const entry = this.bridges.get(`${principal}\u0000${lane}`);
      if (entry === undefined || entry.session?.closed || entry.error !== undefined) {
        if (free === 0) free = lane;
      } else if (quiet(entry)) {
        return this.entryFor(clientId, service, meta, lane);
      }
    }
    return free === 0 ? undefined : this.entryFor(clientId, service, meta, free);
  }

  /**
   * A notification that belongs to no single request: the client's listeners are on its first
   * hidden session, whichever lane the upstream sent it on.
   */
  upstreamNotification(entry: BridgeEntry, message: JsonRpcNotification): void {
    const first = this.bridges.get(entry.principal);
    if (first !== undefined && first !== entry) {
      if (message.method === 'notifications/tools/list_changed') entry.toolsLoadedAt = 0;
      this.subscriptions.upstreamNotification(first, message);
    } else {
      this.subscriptions.upstreamNotification(entry, message);
    }
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
      this.subscriptions.listen(entry, request, res);
      return;
    }
    if (request.method === 'tools/call') {
      this.tools.check(entry, request, headers, res, () => this.forward(entry, request, meta, headers, res));
      return;
    }
    this.forward(entry, request, meta, headers, res);
  }

  /**
   * Sends a client request up the hidden session; its answer comes back on its own channel. A
   * retry of a request answered input_required (its `requestState`) resumes the parked request
   * instead (sessionless-input.ts).
   */
  private forward(
    entry: BridgeEntry,
    request: JsonRpcRequest,
    meta: Record<string, unknown>,
    headers: IncomingHttpHeaders,
    res: ServerResponse,
  ): void {
    let flow: InputFlow<SessionlessChannel> | undefined;
    let digest = '';
    let preset: Record<string, unknown> | undefined;
    let responses: Record<string, unknown> = {};
    if (INPUT_METHODS.has(request.method)) {
      const params = request.params as Record<string, unknown>;
      const { inputResponses, requestState } = params;
      const invalid = (message: string, data?: unknown) =>
        refuse(this.deps, res, 400, ErrorCode.InvalidParams, 'invalid_params', `Invalid params: ${message}`, {
          id: request.id,
          data,
        });
      if (inputResponses !== undefined && !isObject(inputResponses)) {
        invalid('inputResponses must be an object of results by the keys of inputRequests');
        return;
      }
      if (requestState !== undefined && typeof requestState !== 'string') {
        invalid('requestState must be the string the input_required result carried');
        return;
      }
      digest = paramsDigest(params);
      if (inputResponses !== undefined) responses = inputResponses;
      if (requestState !== undefined) {
        const taken = this.inputs.take(requestState, entry.principal, request.method, digest);
        if (!(taken instanceof InputFlow)) {
          this.deps.metrics.error(`request_state_${taken.reason}`);
          invalid(taken.message, { reason: taken.reason });
          return;
        }
        flow = taken;
      } else if (inputResponses !== undefined) {
        preset = { ...responses };
      }
      if (inputResponses !== undefined || requestState !== undefined) {
        // Fields of the 2026-07-28 wire that the bridge consumes: the upstream never sees them.
        const { inputResponses: _i, requestState: _s, ...rest } = params;
        request = { ...request, params: rest };
      }
    }
    const session = flow ? flow.session : entry.session!;
    if (session.closed) {
      if (flow) this.inputs.complete(flow);
      sendJson(res, 502, errorResponse(request.id, ErrorCode.UpstreamUnavailable, 'Upstream session closed'));
      return;
    }
    const channel = new SessionlessChannel(
      this,
      res,
      flow ? flow.entry : entry,
      session,
      entry.init!.serverInfo,
      request.method,
      request.id,
      meta[META_LOG_LEVEL] !== undefined,
      meta[META_CLIENT_CAPABILITIES] as Record<string, unknown>,
    );
    channel.digest = digest;
    if (flow) {
      const token = (meta as { progressToken?: unknown }).progressToken;
      if (typeof token === 'string' || typeof token === 'number') channel.retryToken = token;
      channel.resume(flow, responses);
      return;
    }
    channel.preset = preset;
    // Mcp-Param-* headers travel with this request to HTTP upstreams (other transports have no headers).
    const forwarded = paramHeadersOf(headers);
    // Under a gateway id (and progress token): requests of one client may share an id.
    const upstream = this.requests.carry(channel, request);
    channel.gatewayId = upstream.id as string;
    if (INPUT_METHODS.has(request.method)) {
      channel.inputSlot = channel.entry;
      channel.entry.inputInFlight.add(channel.gatewayId);
    }
    const stream = session.openStream(channel);
    // The bridged session is shared: the caller's headers (traceparent, x-request-id) only for this call.
    session.incoming = headers;
    session.receive(upstream, JSON.stringify(upstream), stream, forwarded);
    session.incoming = undefined;
    session.sealStream(stream);
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

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
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
 * The initialize params the gateway sends for a hidden session, from the request's `_meta`
 * (checked by checkRequestMeta): client info and capabilities as the first request declared
 * them. Sampling, elicitation and roots reach the client as input_required results (the
 * upstream's requests are parked until the retry answers them); a later request that did not
 * declare the capability gets −32021 instead. `tasks` is withheld: 2026-07-28 does not define it
 * (tasks are an extension there) and it would claim task-augmented server→client requests upstream.
 */
function initializeParams(meta: Record<string, unknown>): Record<string, unknown> {
  const caps = { ...(meta[META_CLIENT_CAPABILITIES] as Record<string, unknown>) };
  delete caps.tasks;
  const info = meta[META_CLIENT_INFO];
  return {
    protocolVersion: LATEST_SESSION_PROTOCOL,
    capabilities: caps,
    clientInfo: info ?? { name: 'mcp-gateway-sessionless-bridge', version: '0.1.0' },
  };
}
