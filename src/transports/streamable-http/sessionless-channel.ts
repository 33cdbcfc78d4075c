import type { ServerResponse } from 'node:http';
import {
  ErrorCode,
  errorResponse,
  isNotification,
  isResponse,
  Method,
  SESSIONLESS_PROTOCOL,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
} from '../../../libs/protocol/src';
import type { RequestMultiplexer } from '../../pool/request-multiplexer';
import type { ChannelListener, ClientChannel } from '../../session/client-channel';
import type { Session } from '../../session/session';
import type { KeepAliveTarget } from '../http/keep-alive-ticker';
import { SSE_HEADERS } from '../http/sse-channel';
import type { BridgeEntry } from './sessionless-bridge';
import { answerUpstream, INPUT_METHODS, type InputFlow, type InputFlows } from './sessionless-input';
import type { StreamableHttpDeps } from './streamable-http-deps';

export const META_SERVER_INFO = 'io.modelcontextprotocol/serverInfo';

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

/**
 * How long the bridge waits for more upstream questions after the first before answering the
 * client: an upstream that asks several at once (Promise.all) sends them in a burst, and one
 * input_required result with all of them saves the client round trips.
 */
const INPUT_COALESCE_MS = 5;

/**
 * What a sessionless response needs of the bridge that runs it (SessionlessHandler implements
 * it): the bridge opens the channels, and they reach back only through this.
 */
export interface SessionlessChannelHost {
  readonly deps: Pick<StreamableHttpDeps, 'metrics' | 'keepAlive'>;
  /** The bridge's requests by gateway id: puts the client's id and progress token back. */
  readonly requests: RequestMultiplexer<SessionlessChannel>;
  /** Requests parked for an input_required retry (sessionless-input.ts). */
  readonly inputs: InputFlows<SessionlessChannel>;
  /** Takes the `x-mcp-header` annotations of a tools/list page a client asked for (sessionless-tools.ts). */
  readonly tools: { note(entry: BridgeEntry, result: object): void };
  /** A notification that belongs to no single request (list_changed, resources/updated). */
  upstreamNotification(entry: BridgeEntry, message: JsonRpcNotification): void;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

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

/**
 * One sessionless request's response: JSON when the answer comes first, SSE (no event ids)
 * otherwise. It is one stream of the hidden session; the request runs under a gateway id from
 * the handler's request multiplexer, which puts the client's id and progress token back on
 * what comes down.
 */
export class SessionlessChannel implements ClientChannel, KeepAliveTarget {
  readonly kind = 'streamable' as const;
  listener: ChannelListener | undefined = undefined;
  closed = false;
  lastWrite = Date.now();
  private streaming = false;
  private answered = false;
  /** A write said "full": the session may have paused the upstream until this response drains. */
  private blocked = false;

  /** The id the request runs under in the hidden session (set by the handler when it carries it). */
  gatewayId = '';

  // ---- multi-round-trip requests (sessionless-input.ts)
  /** The request's input flow, once the upstream asked the client for input (or a retry resumed it). */
  flow: InputFlow<SessionlessChannel> | undefined = undefined;
  /** Digest of the request's salient parameters (what its requestState is bound to). */
  digest = '';
  /** `inputResponses` the request brought without a requestState: answers by key, used once. */
  preset: Record<string, unknown> | undefined = undefined;
  /** A retry carries the parked request: the client's progress token of this round (or none). */
  resumed = false;
  retryToken: string | number | undefined = undefined;
  /** Answered input_required: holds the request's stream until the retry takes it over. */
  parked = false;
  /** A capability the upstream asked for that the client did not declare: its failure becomes −32021. */
  private refused: string | undefined = undefined;
  private coalescing: NodeJS.Timeout | undefined = undefined;
  /**
   * The entry whose requests that may ask for input (`inputInFlight`) include this one while it
   * is in flight upstream; handed from a parked channel to its retry.
   */
  inputSlot: BridgeEntry | undefined = undefined;

  /** The request is no longer in flight upstream: it no longer keeps its session from being quiet. */
  private freeSlot(): void {
    const entry = this.inputSlot;
    if (entry === undefined) return;
    this.inputSlot = undefined;
    entry.inputInFlight.delete(this.gatewayId);
  }

  get bufferedBytes(): number {
    return this.res.writableLength;
  }

  constructor(
    private readonly handler: SessionlessChannelHost,
    readonly res: ServerResponse,
    readonly entry: BridgeEntry,
    readonly session: Session,
    readonly serverInfo: unknown,
    readonly method: string,
    /** The client's own id: what the gateway's own error answers for this request carry. */
    readonly clientId: JsonRpcId,
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
    let m = JSON.parse(raw) as Record<string, unknown> & JsonRpcMessage;
    if (this.parked) {
      this.parkedMessage(m);
      return true;
    }
    if (isResponse(m)) {
      // The client's id back in place of the gateway id (the session routes to this stream only
      // the answer to its one request); the multiplexer forgets the request. A retry has its own
      // id (the multiplexer knows round one's).
      this.handler.requests.answer(m);
      (m as { id: JsonRpcId }).id = this.clientId;
      this.freeSlot();
      if (this.flow) this.handler.inputs.complete(this.flow);
      if (this.refused !== undefined && failed(m)) m = this.missingCapability(this.refused);
      const result = (m as { result?: unknown }).result;
      if (result !== null && typeof result === 'object' && !Array.isArray(result)) {
        if (this.method === 'tools/list') this.handler.tools.note(this.entry, result);
        this.decorate(result);
      }
      const error = (m as { error?: { code?: unknown; data?: { retryAfterMs?: unknown } } }).error;
      const retryAfterMs = error?.code === ErrorCode.Overloaded ? error.data?.retryAfterMs : undefined;
      if (typeof retryAfterMs === 'number' && retryAfterMs > 0) {
        // Refused before it ran (pool exhausted, in-flight bound): HTTP's own "later", 429 + Retry-After.
        this.finish(JSON.stringify(m), 429, String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
      } else {
        this.finish(JSON.stringify(m), error ? statusOfError(error.code) : 200);
      }
      return true;
    }
    if (isNotification(m)) {
      if (m.method === Method.Progress) {
        // Only this request's own progress, with the client's token put back (a retry's own).
        if (this.handler.requests.progress(m)?.gatewayId !== this.gatewayId) return true;
        if (this.resumed) {
          if (this.retryToken === undefined) return true;
          (m.params as { progressToken?: unknown }).progressToken = this.retryToken;
        }
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
   * A server→client request on a bridged request. 2026-07-28 has no such requests on the wire:
   * one the client declared the capability for becomes a question of an input_required result
   * (the request is parked until the retry brings the answer); one it did not declare is
   * answered −32021 upstream, and the request's failure becomes −32021 for the client.
   */
  private serverRequest(req: JsonRpcRequest): void {
    if (req.method === Method.Ping) {
      answerUpstream(this.session, { jsonrpc: '2.0', id: req.id, result: {} });
      return;
    }
    const capability = CAPABILITY_OF[req.method];
    if (capability === undefined) {
      answerUpstream(
        this.session,
        errorResponse(req.id, ErrorCode.MethodNotFound, `Method not found: ${req.method}`),
      );
      return;
    }
    if (!INPUT_METHODS.has(this.method)) {
      answerUpstream(
        this.session,
        errorResponse(
          req.id,
          ErrorCode.InternalError,
          `${req.method} cannot reach a ${SESSIONLESS_PROTOCOL} client during ${this.method}: only tools/call, resources/read and prompts/get may ask for input`,
        ),
      );
      return;
    }
    if (this.capabilities[capability] === undefined) {
      this.handler.deps.metrics.error('missing_client_capability');
      this.refused ??= capability;
      answerUpstream(
        this.session,
        errorResponse(
          req.id,
          ErrorCode.MissingClientCapability,
          `Missing required client capability: ${capability}`,
          {
            requiredCapabilities: { [capability]: {} },
          },
        ),
      );
      return;
    }
    let flow = this.flow;
    if (!flow) {
      flow = this.handler.inputs.open(this, this.digest);
      if (!flow) {
        const bound = this.handler.inputs.limits.maxPerClient;
        const message = `Overloaded: ${bound} requests of this client already wait for input (SESSIONLESS_INPUT_MAX_PER_CLIENT); retry them or let them expire`;
        this.handler.deps.metrics.error('input_bound');
        answerUpstream(this.session, errorResponse(req.id, ErrorCode.Overloaded, message));
        this.cancelUpstream('too many requests of this client wait for input');
        const retryAfterMs = this.handler.inputs.limits.ttlMs;
        this.finish(
          JSON.stringify(errorResponse(this.clientId, ErrorCode.Overloaded, message, { retryAfterMs })),
          429,
          String(Math.max(1, Math.ceil(retryAfterMs / 1000))),
        );
        return;
      }
      this.flow = flow;
    }
    const key = flow.ask(req);
    const preset = this.preset?.[key];
    if (isObject(preset)) {
      // The client answered this question ahead (inputResponses without a requestState).
      delete this.preset![key];
      flow.questions.delete(key);
      answerUpstream(this.session, { jsonrpc: '2.0', id: req.id, result: preset });
      return;
    }
    if (!this.parked) this.askSoon();
  }

  /** Answers the client with input_required once the burst of upstream questions is over. */
  askSoon(): void {
    if (this.coalescing !== undefined || this.answered) return;
    this.coalescing = setTimeout(askNow, INPUT_COALESCE_MS, this);
  }

  /** The input_required result: every open question of the flow, and the next round's requestState. */
  ask(): void {
    this.coalescing = undefined;
    const flow = this.flow;
    if (this.answered || this.closed || !flow || flow.questions.size === 0) return;
    const inputRequests: Record<string, unknown> = {};
    for (const q of flow.questions.values()) inputRequests[q.key] = { method: q.method, params: q.params };
    const result: Record<string, unknown> = {
      resultType: 'input_required',
      inputRequests,
      requestState: this.handler.inputs.mint(flow),
    };
    this.decorate(result);
    // The request stays in flight upstream on this channel's stream; the response ends here.
    this.parked = true;
    this.answered = true;
    flow.channel = this;
    this.write(JSON.stringify({ jsonrpc: '2.0', id: this.clientId, result }), 200);
  }

  /** What reaches a parked request before its retry: kept for the retry, or a question more. */
  private parkedMessage(m: JsonRpcMessage): void {
    if (isResponse(m)) {
      this.handler.requests.answer(m);
      this.flow!.answer = m;
      this.freeSlot();
      return;
    }
    // Progress and logs have nobody to go to (2026-07-28 streams are not resumed).
    if (isNotification(m)) return;
    this.serverRequest(m as JsonRpcRequest);
  }

  /**
   * A retry took the parked request over (`take`: it carries its stream now), or the flow
   * ended: this channel gets nothing more.
   */
  retire(): void {
    this.parked = false;
    this.closed = true;
    this.listener = undefined;
  }

  /** The parked request is given up: the upstream is told to stop working on it. */
  releaseParked(reason: string): void {
    if (!this.parked) return;
    this.freeSlot();
    this.retire();
    this.handler.requests.forget(this.gatewayId);
    this.session.abandonRequest(this.gatewayId, reason);
  }

  /**
   * The retry of a parked request: answers the questions it brings answers for, takes over the
   * request's stream (or delivers the answer that came meanwhile), and asks again what is still
   * open.
   */
  resume(flow: InputFlow<SessionlessChannel>, responses: Record<string, unknown>): void {
    const parked = flow.channel;
    this.flow = flow;
    this.resumed = true;
    this.gatewayId = flow.gatewayId;
    flow.channel = this;
    const session = this.session;
    for (const [key, q] of flow.questions) {
      const answer = responses[key];
      if (!isObject(answer)) continue; // not answered: asked again below
      flow.questions.delete(key);
      answerUpstream(session, { jsonrpc: '2.0', id: q.upstreamId, result: answer });
    }
    this.inputSlot = parked.inputSlot;
    parked.inputSlot = undefined;
    parked.retire();
    if (flow.answer !== undefined) {
      // Answered while parked (the upstream gave up on its questions, or timed out).
      const answer = flow.answer;
      flow.answer = undefined;
      this.send(0, 0, JSON.stringify(answer));
      return;
    }
    if (session.closed) {
      this.handler.inputs.complete(flow);
      this.close(502, 'Upstream session closed');
      return;
    }
    // The parked request (same upstream id: still in flight) moves to this response's stream.
    const stream = session.openStream(this);
    session.receive({ jsonrpc: '2.0', id: flow.gatewayId, method: flow.method }, undefined, stream);
    session.sealStream(stream);
    if (flow.questions.size > 0) this.askSoon();
  }

  /** −32021 for the client, naming the capability the upstream needed. */
  private missingCapability(capability: string): Record<string, unknown> & JsonRpcMessage {
    return errorResponse(
      this.clientId,
      ErrorCode.MissingClientCapability,
      `Missing required client capability: ${capability}`,
      { requiredCapabilities: { [capability]: {} } },
    ) as Record<string, unknown> & JsonRpcMessage;
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
    // An input_required result is no answer to cache.
    if (CACHEABLE.has(this.method) && r.resultType === 'complete') {
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
  private finish(body: string, status: number, retryAfter?: string): void {
    if (this.answered) return;
    this.freeSlot();
    this.answered = true;
    this.closed = true;
    this.handler.requests.forget(this.gatewayId); // answered, or ended by the gateway
    this.write(body, status, retryAfter);
  }

  /** Writes `body` as the response's last message and ends it. */
  private write(body: string, status: number, retryAfter?: string): void {
    const res = this.res;
    if (this.streaming) {
      this.handler.deps.keepAlive?.delete(this);
      res.end(`event: message\ndata: ${body}\n\n`);
    } else if (!res.headersSent) {
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
      };
      if (retryAfter !== undefined) headers['retry-after'] = retryAfter;
      res.writeHead(status, headers);
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
    this.freeSlot();
    if (this.coalescing !== undefined) clearTimeout(this.coalescing);
    this.coalescing = undefined;
    // Questions of a flow nobody will answer now get an error upstream.
    if (this.flow) this.handler.inputs.release(this.flow, reason);
    const listener = this.listener;
    this.listener = undefined;
    listener?.channelClosed(this);
    // A cancelled request gets no answer from a conforming server: stop waiting for it so it does
    // not count against the in-flight bound forever, and tell the upstream (the session's port
    // maps the cancellation on, as it does any client's). A late answer is dropped.
    this.handler.requests.forget(this.gatewayId);
    this.session.abandonRequest(this.gatewayId, reason);
  }
}

function askNow(channel: SessionlessChannel): void {
  channel.ask();
}

/** An answer that says the request failed: a JSON-RPC error, or a tool result marked isError. */
function failed(m: JsonRpcMessage): boolean {
  const r = m as { error?: unknown; result?: { isError?: unknown } };
  return r.error !== undefined || r.result?.isError === true;
}

function onSessionlessClose(this: SessionlessChannel): void {
  this.clientClosed();
}

function onSessionlessDrain(this: SessionlessChannel): void {
  this.unblock();
}
