import type { IncomingHttpHeaders } from 'node:http';
import { Logger } from '@nestjs/common';
import {
  ErrorCode,
  errorResponse,
  idKey,
  isRequest,
  isResponse,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcRequest,
} from '../../libs/protocol/src/jsonrpc';
import { Method } from '../../libs/protocol/src/mcp';
import { methodIndex, METHOD_TOOLS_CALL } from '../telemetry/mcp-methods';
import {
  abortRequestTrace,
  endRequestTrace,
  startRequestTrace,
  type RequestTrace,
  type UpstreamTarget,
} from '../telemetry/tracing/mcp-spans';
import { Tracing } from '../telemetry/tracing/tracing';
import { correlationIdFrom, logFields, traceIdOf, type LogFields } from '../telemetry/logging/log-fields';
import { LEVEL_VALUE, LogLevels } from '../telemetry/logging/log-levels';
import type { UpstreamPort } from '../pool/upstream-port';
import type { MessageHeaders, UpstreamSink } from '../upstream/upstream-connection';
import type { ChannelListener, ClientChannel } from './client-channel';
import type { ClientTransport } from '../core/transport-kind';
import { Outbox, type OutboxEntry, type OutboxLimits } from './outbox';
import { ANONYMOUS_CLIENT } from '../core/client-id';
import { EndReason, StreamEnd } from '../core/end-reason';
import { HeldQueue } from '../core/held-queue';
import { NO_ENTRIES } from './empty-map';
import { ResponseStreams, STANDALONE_STREAM } from './response-streams';

// Transports catch it from here: they see sessions, never the outbox (CONVENTIONS 17).
export { ResumeUnavailableError } from './outbox';
// Transports name the standalone stream through the session, which owns the streams.
export { STANDALONE_STREAM } from './response-streams';

/** The services a transport may open sessions for (SessionService answers from the router). */
export interface ServiceDirectory {
  readonly defaultService: string;
  hasService(service: string): boolean;
}
const log = new Logger('Session');
/** Read as a number before a debug line is built: nothing is allocated while debug is off. */
const logLevel = LogLevels.module('Session');

/** Server→client requests (sampling, elicitation, roots) a session tracks while the client answers. */
const MAX_PENDING_SERVER_REQUESTS = 1024;

/** A session that ended (idle, upstream gone for good): WebSocket 4001, start a new one (src/core/end-reason.ts). */
export const SESSION_ENDED_CODE = EndReason.SessionEnded;

/** A session ended by outbox overflow (WebSocket 4008; HTTP streams end with an error event). */
export const SESSION_OVERFLOW_CODE = EndReason.OutboxOverflow;

/** A new session that could not get an upstream (pool exhausted): WebSocket 1013, HTTP 503. */
export const SESSION_RETRY_LATER_CODE = StreamEnd.RetryLater;

/** What an overloaded session tells a client to wait before retrying. */
export const OVERLOAD_RETRY_AFTER_MS = 1000;

export interface SessionOptions {
  id: string;
  clientId: string;
  service: string;
  transport: ClientTransport;
  outbox: OutboxLimits;
  /** Bound on client requests waiting for an upstream answer. */
  maxInFlight: number;
  /** How many completed request ids are remembered for de-duplication. */
  dedupeWindow: number;
  /** How long a completed request id is remembered (the de-duplication window in time). */
  dedupeWindowMs: number;
  /** Hooks to the rest of the gateway; kept as one object so a session holds one reference. */
  hooks: SessionHooks;
}

export interface SessionHooks {
  /** Called for every client message before it is forwarded (S1 publish, metrics); `raw` as received. */
  clientMessage(session: Session, message: JsonRpcMessage, raw?: string): void;
  /** Called for every upstream message delivered to the client (metrics). */
  upstreamMessage(session: Session, message: JsonRpcMessage, bytes: number): void;
  /**
   * A client request got its response (from the upstream, or an error the gateway made for it)
   * `ms` after it arrived; `method` indexes MCP_METHODS, `tool` is a tools/call's tool name.
   */
  requestCompleted?(
    session: Session,
    method: number,
    tool: string | undefined,
    ms: number,
    response: JsonRpcMessage,
  ): void;
  /** The session ended (expired, deleted, upstream gone for good). */
  sessionClosed(session: Session, reason: string): void;
  /** The client fell behind past the outbox bound; the session is being closed. */
  overflow(session: Session): void;
  /** A client message was refused because too much waits for the upstream to connect. */
  overloaded?(session: Session): void;
  /**
   * The client sent an answer to a request this session never delivered to it (or already
   * answered, or forgot past its bound): dropped, never forwarded upstream.
   */
  unrequestedAnswer?(session: Session, id: JsonRpcId | null): void;
  /** A slow reader made the session stop reading from its upstream (`paused`), or it drained. */
  backpressure(session: Session, paused: boolean): void;
  /**
   * Whether the answer to `request` must be rewritten before the client sees it (a list filtered
   * by the client's authorization rules); asked once per request, false for almost all.
   */
  rewritesAnswer?(session: Session, request: JsonRpcRequest): boolean;
  /** The rewritten text of such an answer, or undefined to send the upstream's bytes unchanged. */
  rewriteAnswer?(session: Session, method: string, response: JsonRpcMessage): string | undefined;
}

interface InFlight {
  stream: number;
  progressToken: string | number | undefined;
  /** When it was sent, or when its last progress notification came (progress keeps a request alive). */
  lastSign: number;
  /** The method, when its answer must be rewritten (SessionHooks.rewritesAnswer); otherwise undefined. */
  rewrite: string | undefined;
  /** performance.now() when it arrived: its latency is measured from here. */
  startedAt: number;
  /** Index in MCP_METHODS (the latency histogram it counts in). */
  method: number;
  /** tools/call only: the tool's name. */
  tool: string | undefined;
  /** Its spans; undefined unless tracing is on. */
  trace: RequestTrace | undefined;
  /** What its log lines carry (correlation id…); undefined unless Session logs at debug. */
  log: LogFields | undefined;
}

/** A completed request: the seq of its answer, and when it was answered (for the time window). */
interface Completed {
  seq: number;
  at: number;
}

/** A client message that arrived before the upstream port was ready. */
interface Waiting {
  message: JsonRpcMessage;
  raw: string | undefined;
  headers: MessageHeaders | undefined;
}

/**
 * A client session, independent of the transport it arrived on. Receives client messages,
 * forwards them to its upstream port, and delivers upstream messages to the right channel
 * through the outbox (sequence numbers, replay, de-duplication).
 */
export class Session implements ChannelListener, UpstreamSink {
  readonly id: string;
  readonly clientId: string;
  readonly service: string;
  readonly createdAt = Date.now();
  /** Transport the session was created on, then the one it last moved to. */
  transport: ClientTransport;
  /** The transport the session was created on: its place in that transport's connection count. */
  readonly createdOn: ClientTransport;
  protocolVersion: string | undefined = undefined;
  lastActivity = Date.now();
  closed = false;
  /**
   * Headers of the HTTP request carrying the messages being received (set by the HTTP transports
   * around receive(), and to the upgrade's headers on WebSocket while tracing is on): where the
   * caller's `traceparent` and `x-request-id` are read, only when tracing or debug logs want them.
   */
  incoming: IncomingHttpHeaders | undefined = undefined;
  /**
   * Names the client request an upstream message belongs to when the upstream transport cannot
   * (stdio has no per-request streams): set by an owner that knows a convention for it (the
   * 2026-07-28 bridge reads a `_meta` tag). Consulted only for messages with several requests in flight.
   */
  relatedOf: ((message: JsonRpcMessage) => JsonRpcId | undefined) | undefined = undefined;
  /**
   * For the session layer (the registry's sweeps and budget) and specs: transports ask the
   * session instead (lastSeq, checkResumable), as the lint checks.
   */
  readonly outbox: Outbox;

  /** Which channel carries each response stream (POST streams, the GET stream, a primary connection). */
  private readonly streams: ResponseStreams;

  // Maps start as the shared empty sentinel and are allocated on first write: an idle
  // session holds four references instead of four empty Maps.
  private inFlight: Map<string, InFlight> = NO_ENTRIES;
  private progressTokens: Map<string, string> = NO_ENTRIES;
  private completed: Map<string, Completed> = NO_ENTRIES;
  /** Server→client requests awaiting the client's answer, by id (the port routes the answer to the asker). */
  private serverRequests: Map<string, true> = NO_ENTRIES;

  private port: UpstreamPort | undefined = undefined;
  private upstreamError: string | undefined = undefined;
  /**
   * Client messages that arrived before the upstream port was ready; bounded like requests in
   * flight (count) and like the outbox (bytes of the raw text). Made on first use and dropped
   * once sent, so a session that has its port holds no queue.
   */
  private waiting: HeldQueue<Waiting> | undefined = undefined;
  private pausedUpstream = false;
  /** idKey of the client's first initialize request. */
  private initializeKey: string | undefined = undefined;

  constructor(private readonly options: SessionOptions) {
    this.id = options.id;
    this.clientId = options.clientId;
    this.service = options.service;
    this.transport = options.transport;
    this.createdOn = options.transport;
    this.outbox = new Outbox(options.outbox);
    this.streams = new ResponseStreams(this);
  }

  // ---------------------------------------------------------------- upstream port

  /** Hands the session its upstream port; messages that waited for it are sent now. */
  useUpstream(port: UpstreamPort): void {
    if (this.closed) {
      port.close();
      return;
    }
    this.port = port;
    port.sink = this;
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting) for (const w of waiting.drain()) port.send(w.message, w.raw, w.headers);
  }

  /** No upstream could be had: every waiting and future request is answered with this error. */
  upstreamFailed(reason: string): void {
    this.upstreamError = reason;
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting) for (const w of waiting.drain()) this.failRequest(w.message, reason);
  }

  /** Where the upstream is now (the CLIENT span's attributes). */
  upstreamTarget(): UpstreamTarget | undefined {
    return this.port?.target?.();
  }

  get upstream(): UpstreamPort | undefined {
    return this.port;
  }

  /**
   * How long request `id` may still wait for a pooled checkout (0: it is not waiting). A request
   * that waits for the port itself is not counted: opening a port does not refuse with a retry.
   */
  checkoutWait(id: JsonRpcId): number {
    return this.port?.checkoutWait?.(id) ?? 0;
  }

  // ---------------------------------------------------------------- channels

  /** Opens a response stream for one POST (Streamable HTTP); returns its stream number. */
  openStream(channel: ClientChannel): number {
    return this.streams.open(channel);
  }

  /** The POST that opened `stream` has been read: end the stream once its responses are out. */
  sealStream(stream: number): void {
    this.streams.seal(stream);
  }

  /**
   * Attaches the standalone stream (Streamable HTTP GET). Without a resume position it
   * first receives what waited for a standalone stream; a previous standalone channel is
   * replaced (it is most likely a half-open connection the client gave up on).
   */
  attachStandalone(channel: ClientChannel): void {
    this.streams.attachStandalone(channel);
    this.replay(channel);
    this.touch();
  }

  /**
   * Resumes one Streamable HTTP stream after `afterSeq` (GET with Last-Event-ID).
   * Throws ResumeUnavailableError when the missed messages are gone, or when `afterSeq` is
   * a position the session never reached.
   */
  resumeStream(channel: ClientChannel, stream: number, afterSeq: number): void {
    const entries = this.outbox.since(afterSeq, stream);
    this.outbox.ack(afterSeq, stream);
    const finished = this.streams.resume(channel, stream);
    const now = Date.now();
    for (const e of entries) this.sendEntry(channel, e, now);
    if (finished) this.streams.endResumed(stream, channel);
    this.touch();
  }

  /**
   * Attaches a connection that carries every stream (WebSocket, legacy SSE), replaying what
   * came after `afterSeq` (undefined: what no channel has received yet). Throws
   * ResumeUnavailableError when `afterSeq` cannot be resumed from (messages after it are
   * gone, or the session never reached it).
   */
  attachPrimary(channel: ClientChannel, afterSeq: number | undefined): void {
    const from = afterSeq ?? this.streams.standaloneSentThrough;
    const entries = this.outbox.since(from);
    if (afterSeq !== undefined) this.ack(afterSeq);
    this.transport = channel.kind;
    this.streams.attachPrimary(channel);
    const now = Date.now();
    for (const e of entries) this.sendEntry(channel, e, now);
    this.touch();
  }

  /**
   * Lets go of the WebSocket/SSE connection that carried every stream: the client moved to
   * Streamable HTTP, so its streams must get their own messages again. The old connection
   * is told why (4002) in case it is still alive.
   */
  detachPrimary(): void {
    this.streams.detachPrimary();
  }

  /**
   * Lets go of `channel` as the standalone stream (nobody listens any more) without closing
   * it and without replaying anything; what arrives later waits in the outbox for the next
   * attachStandalone(). Returns false when `channel` is not the attached standalone stream.
   */
  detachStandalone(channel: ClientChannel): boolean {
    if (!this.streams.detachStandalone(channel)) return false;
    // A paused upstream may have been waiting for this channel to drain.
    if (this.pausedUpstream) this.channelDrained(channel);
    this.touch();
    return true;
  }

  hasLiveChannel(): boolean {
    return this.streams.hasLiveChannel();
  }

  channelDrained(_channel: ClientChannel): void {
    if (this.pausedUpstream) {
      this.pausedUpstream = false;
      this.port?.resume();
      this.options.hooks.backpressure(this, false);
    }
  }

  channelClosed(channel: ClientChannel): void {
    this.streams.channelClosed(channel);
    if (this.pausedUpstream) this.channelDrained(channel);
    this.touch();
  }

  // ---------------------------------------------------------------- outbox position

  /** Sequence number of the last message the session issued (0: none yet); the next one is above it. */
  get lastSeq(): number {
    return this.outbox.seq;
  }

  /**
   * Throws ResumeUnavailableError unless the client can resume after `afterSeq` (nothing it
   * lacks was dropped, and the session reached that position): a transport asks before it
   * opens a stream, so it can refuse in its own terms.
   */
  checkResumable(afterSeq: number): void {
    this.outbox.since(afterSeq);
  }

  // ---------------------------------------------------------------- client → upstream

  /**
   * One message from the client. Requests are registered on `stream` (the POST's
   * response stream, or 0) so their responses and related messages find their way back.
   * Returns false when the request was refused (in-flight bound) and answered with an error.
   */
  receive(
    message: JsonRpcMessage,
    raw: string | undefined,
    stream: number,
    headers?: MessageHeaders,
  ): boolean {
    this.touch();
    this.options.hooks.clientMessage(this, message, raw);
    if (isRequest(message)) {
      const key = idKey(message.id);
      const existing = this.inFlight.get(key);
      if (existing) {
        // A re-sent request (failover, lost POST stream): follow it to the new stream, never re-forward.
        this.moveRequest(existing, stream);
        return true;
      }
      const done = this.completed.get(key);
      if (done !== undefined) {
        this.replayResponse(message, done.seq, stream);
        return true;
      }
      if (this.inFlight.size >= this.options.maxInFlight) {
        this.answer(
          errorResponse(message.id, ErrorCode.Overloaded, 'Too many requests in flight for this session', {
            retryAfterMs: OVERLOAD_RETRY_AFTER_MS,
          }),
          stream,
        );
        return false;
      }
      if (this.waitingFull(raw)) {
        this.refuseWaiting(message.id, stream);
        return false;
      }
      const token = progressTokenOf(message);
      if (this.inFlight === NO_ENTRIES) this.inFlight = new Map();
      const rewrite = this.options.hooks.rewritesAnswer?.(this, message) ? message.method : undefined;
      const method = methodIndex(message.method);
      let trace: RequestTrace | undefined;
      if (Tracing.enabled) {
        // The upstream's trace context goes into _meta (spliced into the text) and the headers.
        const started = startRequestTrace(this, message, raw, headers);
        trace = started.trace;
        raw = started.raw;
        headers = started.headers;
      }
      let fields: LogFields | undefined;
      if (logLevel.value <= LEVEL_VALUE.debug) {
        fields = this.requestLogFields(message, trace);
        log.debug({ ...fields, method: message.method, requestId: message.id }, 'client request');
      }
      this.inFlight.set(key, {
        stream,
        progressToken: token,
        lastSign: this.lastActivity,
        rewrite,
        startedAt: performance.now(),
        method,
        tool: method === METHOD_TOOLS_CALL ? toolNameOf(message) : undefined,
        trace,
        log: fields,
      });
      if (token !== undefined) {
        if (this.progressTokens === NO_ENTRIES) this.progressTokens = new Map();
        this.progressTokens.set(tokenKey(token), key);
      }
      this.streams.requestAdded(stream);
      if (message.method === Method.Initialize) this.noteInitialize(message);
    } else if ((message as JsonRpcRequest).method === Method.Cancelled) {
      this.cancelled(message as JsonRpcRequest);
    } else if (isResponse(message)) {
      // Only an answer to a server request this session delivered goes upstream: an id it never
      // sent its client (another session's, a guess, one answered already) is dropped and counted.
      if (message.id !== null && this.serverRequests.delete(idKey(message.id))) {
        this.port?.send(message, raw);
      } else {
        this.options.hooks.unrequestedAnswer?.(this, message.id);
      }
      return true;
    }
    this.forward(message, raw, headers);
    return true;
  }

  /**
   * The client gave up on a request: the upstream will not answer it (spec: a receiver of a
   * cancellation does not respond), so stop waiting and let its stream end.
   */
  private cancelled(message: JsonRpcRequest): void {
    const requestId = (message.params as { requestId?: unknown } | undefined)?.requestId;
    if (typeof requestId !== 'string' && typeof requestId !== 'number') return;
    this.stopWaiting(idKey(requestId));
  }

  /**
   * The client that sent request `id` is gone (e.g. it closed the response): stop waiting for
   * the answer so it no longer counts against the in-flight bound, and let its stream end. No
   * answer is invented: a late upstream answer is dropped as one to nothing asked. With
   * `notifyUpstream` the upstream is told (notifications/cancelled) to stop working on it.
   * Returns false when the request was not in flight (already answered, or unknown).
   */
  abandonRequest(id: JsonRpcId, reason: string, notifyUpstream = true): boolean {
    if (this.closed || !this.stopWaiting(idKey(id))) return false;
    if (notifyUpstream) {
      this.forward(
        { jsonrpc: '2.0', method: Method.Cancelled, params: { requestId: id, reason } },
        undefined,
      );
    }
    this.touch();
    return true;
  }

  /** Forgets an in-flight request without an answer; false when it was not in flight. */
  private stopWaiting(key: string): boolean {
    const req = this.inFlight.get(key);
    if (!req) return false;
    this.inFlight.delete(key);
    if (req.trace) abortRequestTrace(req.trace, 'cancelled');
    if (req.log) log.debug(req.log, 'request ended without an answer (cancelled or abandoned)');
    if (req.progressToken !== undefined) this.progressTokens.delete(tokenKey(req.progressToken));
    this.streams.requestDone(req.stream);
    return true;
  }

  private forward(message: JsonRpcMessage, raw: string | undefined, headers?: MessageHeaders): void {
    if (this.port) {
      this.port.send(message, raw, headers);
    } else if (this.upstreamError !== undefined) {
      this.failRequest(message, this.upstreamError);
    } else if (this.waitingFull(raw)) {
      // Only notifications get here (requests were refused before they were registered); they
      // have no id to answer, so the client is told on the standalone stream instead.
      this.refuseWaiting(null, STANDALONE_STREAM);
    } else {
      this.waiting ??= new HeldQueue<Waiting>(this.options.maxInFlight, this.options.outbox.maxBytes);
      this.waiting.push({ message, raw, headers }, raw?.length ?? 0);
    }
  }

  /**
   * Whether one more message (of `raw`) would take the queue waiting for the upstream past its
   * bound. None waiting yet: the first one always may.
   */
  private waitingFull(raw: string | undefined): boolean {
    if (this.port || this.upstreamError !== undefined || this.waiting === undefined) return false;
    return !this.waiting.fits(raw?.length ?? 0);
  }

  private refuseWaiting(id: JsonRpcId | null, stream: number): void {
    this.options.hooks.overloaded?.(this);
    this.answer(
      errorResponse(id, ErrorCode.Overloaded, 'Too many messages waiting for the upstream to connect', {
        retryAfterMs: OVERLOAD_RETRY_AFTER_MS,
      }),
      stream,
    );
  }

  private failRequest(message: JsonRpcMessage, reason: string): void {
    if (!isRequest(message)) return;
    this.upstreamMessage(
      errorResponse(message.id, ErrorCode.UpstreamUnavailable, `Upstream unavailable: ${reason}`),
      undefined,
      undefined,
    );
  }

  /** Correlation id (the caller's x-request-id when sane) and the trace the request belongs to. */
  private requestLogFields(message: JsonRpcRequest, trace: RequestTrace | undefined): LogFields {
    const meta = (message.params as { _meta?: { traceparent?: unknown } } | undefined)?._meta;
    const traceId = trace
      ? trace.server.spanContext().traceId
      : (traceIdOf(meta?.traceparent) ?? traceIdOf(this.incoming?.traceparent));
    return logFields(this, correlationIdFrom(this.incoming), traceId);
  }

  private noteInitialize(message: JsonRpcRequest): void {
    this.initializeKey ??= idKey(message.id);
    const params = message.params as { protocolVersion?: unknown } | undefined;
    if (typeof params?.protocolVersion === 'string' && this.protocolVersion === undefined) {
      this.protocolVersion = params.protocolVersion;
    }
  }

  // ---------------------------------------------------------------- upstream → client

  /**
   * One message from the upstream. `related` is the client request it belongs to when the
   * upstream transport knows (e.g. it arrived on that request's HTTP response stream).
   */
  upstreamMessage(message: JsonRpcMessage, raw: string | undefined, related: JsonRpcId | undefined): void {
    if (this.closed) return;
    let text = raw ?? JSON.stringify(message);
    let stream = STANDALONE_STREAM;
    if (isResponse(message)) {
      const req = message.id === null ? undefined : this.inFlight.get(idKey(message.id));
      if (req?.rewrite !== undefined)
        text = this.options.hooks.rewriteAnswer?.(this, req.rewrite, message) ?? text;
      // Bytes as they go out (UTF-8), not UTF-16 code units.
      this.options.hooks.upstreamMessage(this, message, Buffer.byteLength(text));
      if (message.id === null) return;
      const key = idKey(message.id);
      if (!req) return; // an answer to nothing the client asked (late, duplicate, or internal)
      this.inFlight.delete(key);
      this.options.hooks.requestCompleted?.(
        this,
        req.method,
        req.tool,
        performance.now() - req.startedAt,
        message,
      );
      if (req.progressToken !== undefined) this.progressTokens.delete(tokenKey(req.progressToken));
      stream = req.stream;
      const retryAfterMs = refusalRetryAfter(message);
      if (retryAfterMs === undefined) {
        this.noteInitializeResult(message);
        this.rememberCompleted(key, this.deliverTo(stream, text));
      } else {
        // Refused before it ran (pool exhausted): not remembered, so a retry with the same id
        // is carried again instead of being answered with the refusal from the dedupe log.
        this.deliverTo(stream, text, retryAfterMs);
      }
      if (req.trace) endRequestTrace(req.trace, message);
      if (req.log) {
        const error = (message as { error?: { code?: unknown } }).error;
        log.debug(
          { ...req.log, errorCode: error?.code, bytes: Buffer.byteLength(text) },
          'response delivered',
        );
      }
      this.streams.requestDone(stream);
      // A new session whose initialize could not get an upstream has nothing to go on with:
      // it ends as "try again later" (WebSocket 1013, HTTP 503) instead of lingering unusable.
      if (retryAfterMs !== undefined && key === this.initializeKey) {
        this.close(
          'no upstream session is free for a new session; try again later',
          SESSION_RETRY_LATER_CODE,
        );
      }
      return;
    }
    // Bytes as they go out (UTF-8), not UTF-16 code units.
    this.options.hooks.upstreamMessage(this, message, Buffer.byteLength(text));
    stream = this.streamFor(message, related);
    if (isRequest(message)) {
      if (this.serverRequests === NO_ENTRIES) this.serverRequests = new Map();
      this.serverRequests.set(idKey(message.id), true);
      // A client that never answers must not grow this without bound: forget the oldest question.
      if (this.serverRequests.size > MAX_PENDING_SERVER_REQUESTS) {
        this.serverRequests.delete(this.serverRequests.keys().next().value as string);
      }
    }
    this.deliverTo(stream, text);
  }

  upstreamClosed(error: Error | undefined): void {
    if (this.closed) return;
    const reason = error ? error.message : 'upstream connection closed';
    // Everything still waiting gets an answer: a request is never left hanging.
    for (const key of [...this.inFlight.keys()]) {
      this.upstreamMessage(
        errorResponse(unKey(key), ErrorCode.UpstreamUnavailable, `Upstream unavailable: ${reason}`),
        undefined,
        undefined,
      );
    }
    this.serverRequests = NO_ENTRIES;
    // The upstream gave up for good (restarts exhausted): the client must start a new session
    // rather than keep one that answers every request with an error.
    this.close(`upstream gone: ${reason}`, SESSION_ENDED_CODE);
  }

  private noteInitializeResult(message: JsonRpcMessage): void {
    const result = (message as { result?: { protocolVersion?: unknown } }).result;
    if (result && typeof result.protocolVersion === 'string' && result.protocolVersion !== '') {
      // The upstream's answer is what both sides speak from now on.
      this.protocolVersion = result.protocolVersion;
    }
  }

  private streamFor(message: JsonRpcMessage, related: JsonRpcId | undefined): number {
    const m = message as JsonRpcRequest;
    if (m.method === Method.Progress) {
      const token = (m.params as { progressToken?: string | number } | undefined)?.progressToken;
      const key = token === undefined ? undefined : this.progressTokens.get(tokenKey(token));
      const req = key === undefined ? undefined : this.inFlight.get(key);
      if (req) {
        req.lastSign = Date.now();
        return req.stream;
      }
    }
    if (related === undefined && this.relatedOf !== undefined && this.inFlight.size > 1) {
      related = this.relatedOf(message);
    }
    if (related !== undefined) {
      const req = this.inFlight.get(idKey(related));
      if (req) return req.stream;
    }
    // The upstream did not say (stdio): with exactly one request outstanding it can only be that
    // one's — unless the port names the request of everything that has one (pooled mode).
    if (this.inFlight.size === 1 && this.port?.attributesAll !== true) {
      for (const req of this.inFlight.values()) return req.stream;
    }
    return STANDALONE_STREAM;
  }

  /**
   * Appends to the outbox and sends on the channel that owns the stream, if one is attached.
   * `retryAfterMs`: the message refuses its request for now (overload); a channel that can say
   * so in its own terms (HTTP 429 before the response started) is told.
   */
  private deliverTo(stream: number, raw: string, retryAfterMs?: number) {
    const entry = this.outbox.append(stream, raw);
    const channel = this.streams.channelFor(stream);
    if (channel) {
      this.streams.handedOut(stream, entry.seq);
      this.sendEntry(channel, entry, Date.now());
      if (retryAfterMs !== undefined) channel.refusedLast?.(retryAfterMs);
    }
    return entry;
  }

  /** Writes a retained entry to a live channel; from now on it is kept only for the resume window. */
  private sendEntry(channel: ClientChannel, entry: OutboxEntry, now: number): void {
    if (channel.closed) return;
    this.outbox.markDelivered(entry, now);
    this.sendTo(channel, entry.seq, entry.stream, entry.raw);
  }

  private sendTo(channel: ClientChannel, seq: number, stream: number, raw: string): void {
    if (channel.closed) return;
    if (channel.send(seq, stream, raw)) return;
    if (channel.bufferedBytes > this.options.outbox.maxBytes) {
      // Pausing the upstream was not enough (it had this much in flight, or ignores pauses):
      // end the session with a reason rather than buffer without bound.
      this.options.hooks.overflow(this);
      this.close(
        `outbox overflow: ${channel.bufferedBytes} bytes waiting for a client that reads too slowly (bound ${this.options.outbox.maxBytes})`,
        SESSION_OVERFLOW_CODE,
      );
      return;
    }
    if (!this.pausedUpstream && this.port) {
      // Slow reader: stop reading from the upstream instead of buffering without bound.
      this.pausedUpstream = true;
      this.port.pause();
      this.options.hooks.backpressure(this, true);
    }
  }

  /** Hands a new standalone channel what waited for one (a fresh listener: nothing to resume). */
  private replay(channel: ClientChannel): void {
    const entries = this.outbox.retainedSince(this.streams.standaloneSentThrough, STANDALONE_STREAM);
    const now = Date.now();
    for (const e of entries) {
      this.sendEntry(channel, e, now);
      this.streams.handedOut(STANDALONE_STREAM, e.seq);
    }
  }

  /** Answers a request locally (gateway-generated response) on its stream. */
  answer(response: JsonRpcMessage, stream: number): void {
    this.deliverTo(stream, JSON.stringify(response));
  }

  private moveRequest(req: InFlight, stream: number): void {
    if (req.stream === stream) return;
    this.streams.requestDone(req.stream);
    req.stream = stream;
    this.streams.requestAdded(stream);
  }

  private replayResponse(message: JsonRpcRequest, seq: number, stream: number): void {
    const entry = this.outbox.find(seq);
    if (entry) {
      const channel = this.streams.channelFor(stream);
      if (channel) {
        this.outbox.markDelivered(entry, Date.now());
        this.sendTo(channel, entry.seq, stream, entry.raw);
      }
      return;
    }
    this.answer(
      errorResponse(
        message.id,
        ErrorCode.InvalidRequest,
        'Duplicate request id: this request was already answered and the answer is no longer retained',
      ),
      stream,
    );
  }

  private rememberCompleted(key: string, entry: OutboxEntry): void {
    if (this.completed === NO_ENTRIES) this.completed = new Map();
    // A delivered answer already carries the time: one clock read per message is enough.
    this.completed.set(key, { seq: entry.seq, at: entry.deliveredAt || Date.now() });
    if (this.completed.size > this.options.dedupeWindow) {
      const oldest = this.completed.keys().next().value as string;
      this.completed.delete(oldest);
    }
  }

  // ---------------------------------------------------------------- acknowledgement

  /**
   * The client confirmed it has every message up to `seq`: drop those entries so the outbox
   * bound is spent on what it still lacks. Ignored unless 0 ≤ seq ≤ the last sequence issued
   * (acknowledging the future would hide later losses from a resume).
   */
  ack(seq: number): void {
    if (!Number.isSafeInteger(seq) || seq < 0 || seq > this.outbox.seq) return;
    this.outbox.ack(seq);
  }

  /**
   * Lets go of what is kept only in case the client comes back: outbox entries delivered over a
   * live channel longer ago than the resume window, and completed request ids older than the
   * de-duplication window. Driven by the registry's shared sweep. Returns the entries dropped.
   */
  expireRetained(now: number): number {
    if (this.completed !== NO_ENTRIES) {
      for (const [key, done] of this.completed) {
        if (now - done.at < this.options.dedupeWindowMs) break; // insertion order is completion order
        this.completed.delete(key);
      }
      if (this.completed.size === 0) this.completed = NO_ENTRIES;
    }
    // Emptied maps go back to the shared sentinel: an idle session holds references, not Maps.
    if (this.inFlight.size === 0) this.inFlight = NO_ENTRIES;
    if (this.progressTokens.size === 0) this.progressTokens = NO_ENTRIES;
    if (this.serverRequests.size === 0) this.serverRequests = NO_ENTRIES;
    return this.outbox.expireDelivered(now);
  }

  /** Drops every delivered entry: for transports that never resume (nothing will be asked again). */
  ackAll(): void {
    this.outbox.ack(this.outbox.seq);
  }

  // ---------------------------------------------------------------- lifecycle

  touch(): void {
    this.lastActivity = Date.now();
  }

  /**
   * Who the session counts as for per-client policy (S2 switch budget, routing): its client
   * id, or the session itself for an anonymous client, so strangers do not share one budget.
   */
  get policyKey(): string {
    return this.clientId === ANONYMOUS_CLIENT ? `${ANONYMOUS_CLIENT}:${this.id}` : this.clientId;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /**
   * Answers requests that have had no answer and no progress for `timeoutMs` with an
   * UpstreamTimeout error, and tells the upstream to stop working on them. Driven by the
   * registry's shared sweep, not a timer per request. Returns how many timed out.
   */
  expireRequests(now: number, timeoutMs: number): number {
    if (this.inFlight.size === 0 || this.closed) return 0;
    let expired = 0;
    for (const [key, req] of this.inFlight) {
      if (now - req.lastSign < timeoutMs) continue;
      const id = unKey(key);
      this.port?.send(
        {
          jsonrpc: '2.0',
          method: Method.Cancelled,
          params: { requestId: id, reason: 'gateway request timeout' },
        },
        undefined,
      );
      // Deleting the entry being visited is safe while iterating a Map.
      this.upstreamMessage(
        errorResponse(
          id,
          ErrorCode.UpstreamTimeout,
          `Upstream timeout: no answer or progress within ${timeoutMs} ms`,
        ),
        undefined,
        undefined,
      );
      expired++;
    }
    return expired;
  }

  /**
   * Whether `requests` more client requests fit under the in-flight bound. HTTP transports
   * ask before reading a POST so they can answer 429 with Retry-After instead of a stream.
   * Re-sent requests are counted too (a client at the bound retries a little later).
   */
  canAccept(requests: number): boolean {
    return this.inFlight.size + requests <= this.options.maxInFlight;
  }

  /** Ends the session: closes every channel, closes the upstream port. Idempotent. */
  close(reason: string, code: number = SESSION_ENDED_CODE): void {
    if (this.closed) return;
    this.closed = true;
    this.streams.closeAll(code, reason);
    if (this.port) {
      this.port.sink = undefined;
      this.port.close();
      this.port = undefined;
    }
    this.waiting = undefined;
    if (Tracing.enabled)
      for (const req of this.inFlight.values()) if (req.trace) abortRequestTrace(req.trace, 'session_closed');
    this.inFlight = NO_ENTRIES;
    this.progressTokens = NO_ENTRIES;
    this.completed = NO_ENTRIES;
    this.serverRequests = NO_ENTRIES;
    this.outbox.clear();
    this.options.hooks.sessionClosed(this, reason);
  }
}

/**
 * `retryAfterMs` of an upstream answer that refuses its request for now (−31003 with
 * data.retryAfterMs: the pool was exhausted), undefined for any other message. Cheap for the
 * common case: a result has no `error` member.
 */
function refusalRetryAfter(message: JsonRpcMessage): number | undefined {
  const error = (message as { error?: { code?: unknown; data?: { retryAfterMs?: unknown } } }).error;
  if (error === undefined || error.code !== ErrorCode.Overloaded) return undefined;
  const ms = error.data?.retryAfterMs;
  return typeof ms === 'number' && ms > 0 ? ms : undefined;
}

function progressTokenOf(message: JsonRpcRequest): string | number | undefined {
  const params = message.params as { _meta?: { progressToken?: unknown } } | undefined;
  const token = params?._meta?.progressToken;
  return typeof token === 'string' || typeof token === 'number' ? token : undefined;
}

function toolNameOf(message: JsonRpcRequest): string | undefined {
  const name = (message.params as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' ? name : undefined;
}

function tokenKey(token: string | number): string {
  return typeof token === 'number' ? `n${token}` : `s${token}`;
}

function unKey(key: string): JsonRpcId {
  return key[0] === 'n' ? Number(key.slice(1)) : key.slice(1);
}
