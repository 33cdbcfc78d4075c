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
import { Header, Method } from '../../libs/protocol/src/mcp';
import type { ReplicaConfig } from '../config/gateway-config';
import { HeldQueue } from '../core/held-queue';
import {
  abortForTimeout,
  errorObjectOf,
  HttpCall,
  type HttpCallListener,
  neverConnected,
  PauseGate,
  readSmallText,
} from './http-client';
import { answerNotSent, cancelledRequestId } from './in-flight-requests';
import {
  type AnswerTarget,
  type ReceiverOwner,
  type StreamedPost,
  StreamableHttpReceiver,
} from './streamable-http-receiver';
import type { UpstreamOptions } from './upstream-options';
import type { MessageHeaders, UpstreamConnection, UpstreamSink } from './upstream-connection';
import { describeError, HandshakeStep, UpstreamHandshake } from './upstream-handshake';
import { parseUpstreamText } from './upstream-message';

type HttpReplica = Extract<ReplicaConfig, { transport: 'streamable-http' | 'sse' }>;

/** Messages held while the upstream session is being re-established. */
const MAX_HELD = 10_000;
/** DELETE at close is a courtesy: never let it hold shutdown up for long. */
const DELETE_TIMEOUT_MS = 1000;
/** Consecutive failed requests after which healthy() says no (the pool then validates/evicts). */
const UNHEALTHY_AFTER_FAILURES = 3;

function withPostFields(headers: Record<string, string>): Record<string, string> {
  headers['content-type'] = 'application/json';
  headers.accept = 'application/json, text/event-stream';
  return headers;
}

// ---------------------------------------------------------------------------------------------
// Streamable HTTP upstream
// ---------------------------------------------------------------------------------------------

/** A message waiting to be (re-)sent; `attempt` counts session-expiry retries. */
interface Held {
  message: JsonRpcMessage;
  raw: string | undefined;
  attempt: number;
  headers: MessageHeaders | undefined;
}

/**
 * One POST of a client message, and its state: undici's callbacks become method calls on the
 * upstream (HttpCallListener), so the common exchange needs no promise or closure.
 */
class PostCall extends HttpCall implements HttpCallListener, StreamedPost {
  /** Header deadline (see post()). */
  timer: NodeJS.Timeout | undefined = undefined;
  /** A message in the answer was the response to requestId. */
  answered = false;
  /** The client cancelled the request (or the session gave up on it): nothing more is reported. */
  cancelled = false;
  /** The GET that resumes this answer's stream, while one runs (aborted with the POST). */
  resumeCall: HttpCall | undefined = undefined;
  private finished = false;
  /** Made only when someone waits for the exchange (the handshake replay). */
  private whenDone: Promise<void> | undefined = undefined;
  private resolveDone: (() => void) | undefined = undefined;

  constructor(
    readonly owner: StreamableHttpUpstream,
    readonly message: JsonRpcMessage,
    readonly raw: string | undefined,
    readonly requestId: JsonRpcId | undefined,
    readonly sentSession: string | undefined,
    readonly generation: number,
    readonly attempt: number,
    readonly extraHeaders: MessageHeaders | undefined,
  ) {
    super();
  }

  callHeaders(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.owner.postAnswerStarted(this);
  }

  callBody(): void {
    this.owner.postAnswered(this);
  }

  callFailed(_call: HttpCall, err: Error): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.owner.postFailed(this, err);
  }

  /** The exchange is over (answered, failed, or handed on). */
  finish(): void {
    this.finished = true;
    const resolve = this.resolveDone;
    this.resolveDone = undefined;
    resolve?.();
  }

  /** Resolves when the exchange is over. */
  done(): Promise<void> {
    if (this.finished) return Promise.resolve();
    this.whenDone ??= new Promise<void>((resolve) => (this.resolveDone = resolve));
    return this.whenDone;
  }
}

function postDoneOf(upstream: StreamableHttpUpstream, call: PostCall): void {
  upstream.postDone(call);
}

function postBrokenOf(upstream: StreamableHttpUpstream, call: PostCall, err: unknown): void {
  upstream.postBroken(call, err);
}

/** Like `text.trim().length === 0`; a JSON answer (`{…}`, `[…]`) is told apart without trimming it. */
function isBlank(text: string): boolean {
  const first = text.charCodeAt(0);
  if (first === 123 /* { */ || first === 91 /* [ */) return false;
  return text.trim().length === 0;
}

/**
 * A raw JSON-RPC client of the MCP Streamable HTTP transport (2025-03-26 … 2025-11-25) on undici's
 * dispatcher (see HttpCall). Every client message is one POST; the answer comes back as JSON or as an SSE stream that
 * may also carry the request's progress, logs and server→client requests (delivered with that
 * request's id as `related`). The standalone GET stream carries everything else.
 */
export class StreamableHttpUpstream implements UpstreamConnection, ReceiverOwner {
  readonly kind = 'streamable-http' as const;
  sink: UpstreamSink | undefined = undefined;

  private readonly logger: Logger;
  private readonly url: string;
  /** The URL split the way undici's dispatcher takes it. */
  private readonly origin: string;
  private readonly path: string;
  private readonly handshake = new UpstreamHandshake();
  private sessionId: string | undefined = undefined;
  /** Bumped whenever the upstream session is replaced, so loops of an old session stop. */
  private generation = 0;
  private closed = false;
  private closing: Promise<void> | undefined = undefined;
  private failures = 0;
  /** Client messages held while the upstream session is re-established. */
  private readonly held = new HeldQueue<Held>(MAX_HELD);
  /** True when the session was lost and the next send must replay the handshake first. */
  private needsHandshake = false;
  private readonly active = new Set<HttpCall>();
  /** The exchange of each client request whose answer is awaited, by idKey (see cancelPost()). */
  private readonly requests = new Map<string, PostCall>();
  /** See postHeaders(). */
  private sessionPostHeaders: Record<string, string> | undefined = undefined;
  private readonly gate = new PauseGate();
  /** Reads the SSE answers and the standalone GET stream (see StreamableHttpReceiver). */
  private readonly receiver: StreamableHttpReceiver;

  constructor(
    readonly replica: ReplicaConfig,
    private readonly options: UpstreamOptions,
  ) {
    const r = replica as HttpReplica;
    this.url = r.url;
    const url = new URL(r.url);
    this.origin = url.origin;
    this.path = url.pathname + url.search;
    this.logger = new Logger(`StreamableHttpUpstream ${replica.id ?? r.url}`);
    this.receiver = new StreamableHttpReceiver(
      this,
      this.origin,
      this.path,
      options,
      this.gate,
      this.active,
      this.logger,
    );
  }

  /** Client requests whose answer is still awaited (POST or resumed stream open). */
  get inFlightCount(): number {
    return this.requests.size;
  }

  /**
   * Checks that the upstream answers HTTP at all, so the pool can move on to the next replica when
   * it does not. HEAD opens no stream and creates no session; any HTTP status proves reachability,
   * except the ones a proxy uses for a dead backend.
   */
  async start(): Promise<void> {
    if (this.closed) throw new Error('connection closed');
    const call = new HttpCall();
    const timer = setTimeout(
      abortForTimeout,
      this.options.connectTimeoutMs,
      call,
      `no answer within ${this.options.connectTimeoutMs} ms`,
    );
    this.active.add(call);
    try {
      const res = await call.send(this.origin, this.path, 'HEAD', this.headers(false), undefined);
      res.discard();
      if (res.status === 502 || res.status === 503 || res.status === 504) {
        throw new Error(`Upstream unreachable: HTTP ${res.status}`);
      }
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('Upstream unreachable')) throw err;
      throw new Error(`Upstream unreachable: ${describeError(err)}`);
    } finally {
      clearTimeout(timer);
      this.active.delete(call);
    }
  }

  send(message: JsonRpcMessage, raw: string | undefined, headers?: MessageHeaders): void {
    if (this.closed) {
      this.requestFailed(message, 'Upstream unavailable: connection closed', false);
      return;
    }
    this.handshake.outgoing(message);
    if (this.handshake.replaying) {
      this.hold(message, raw, 0, headers);
      return;
    }
    if (this.needsHandshake && (message as JsonRpcRequest).method !== Method.Initialize) {
      this.hold(message, raw, 0, headers);
      this.beginReplay();
      return;
    }
    this.post(message, raw, 0, headers);
  }

  pause(): void {
    this.gate.pause();
  }

  resume(): void {
    this.gate.resume();
  }

  healthy(): boolean {
    return !this.closed && this.failures < UNHEALTHY_AFTER_FAILURES;
  }

  close(): Promise<void> {
    if (!this.closing) this.closing = this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    this.held.clear();
    this.receiver.close();
    this.gate.resume();
    for (const call of this.active) call.abort(new Error('connection closed'));
    this.active.clear();
    this.requests.clear();
    const sessionId = this.sessionId;
    this.sessionId = undefined;
    if (sessionId === undefined) return;
    // Ends the upstream session now instead of leaving it to the server's idle timeout.
    const headers = this.headers(false);
    headers[Header.SessionId] = sessionId;
    const call = new HttpCall();
    const timer = setTimeout(abortForTimeout, DELETE_TIMEOUT_MS, call, 'DELETE timed out');
    try {
      const res = await call.send(this.origin, this.path, 'DELETE', headers, undefined);
      res.discard();
    } catch {
      // best effort: the upstream will expire the session by itself
    } finally {
      clearTimeout(timer);
    }
  }

  // ------------------------------------------------------------------------------ sending

  private hold(
    message: JsonRpcMessage,
    raw: string | undefined,
    attempt: number,
    headers: MessageHeaders | undefined,
  ): void {
    if (!this.held.fits()) {
      this.requestFailed(
        message,
        'Upstream unavailable: too many messages waiting for the upstream session',
        false,
      );
      return;
    }
    this.held.push({ message, raw, attempt, headers });
  }

  private headers(withSession: boolean): Record<string, string> {
    const h: Record<string, string> = { ...(this.replica as HttpReplica).headers };
    if (withSession) {
      if (this.sessionId !== undefined) h[Header.SessionId] = this.sessionId;
      if (this.handshake.protocolVersion !== undefined)
        h[Header.ProtocolVersion] = this.handshake.protocolVersion;
    }
    return h;
  }

  /**
   * The headers of a POST. The ones with the session are built once per session id and protocol
   * version rather than per message (undici only reads them).
   */
  private postHeaders(withSession: boolean): Record<string, string> {
    if (!withSession) return withPostFields(this.headers(false));
    const cached = this.sessionPostHeaders;
    if (
      cached !== undefined &&
      cached[Header.SessionId] === this.sessionId &&
      cached[Header.ProtocolVersion] === this.handshake.protocolVersion
    ) {
      return cached;
    }
    const headers = withPostFields(this.headers(true));
    this.sessionPostHeaders = headers;
    return headers;
  }

  /**
   * POSTs one message and handles whatever comes back. Never throws. No promise or closure per
   * message on the common path (a JSON answer or a 202): the PostCall is the exchange's state and
   * undici's callbacks reach postAnswered() / postFailed() as method calls.
   */
  private post(
    message: JsonRpcMessage,
    raw: string | undefined,
    attempt: number,
    extraHeaders?: MessageHeaders,
  ): PostCall {
    const requestId = isRequest(message) ? message.id : undefined;
    const isInit = (message as JsonRpcRequest).method === Method.Initialize;
    const base = this.postHeaders(!isInit);
    // The cached session headers are shared: copy only when this message brings its own.
    const headers = extraHeaders ? { ...base, ...extraHeaders } : base;
    const call = new PostCall(
      this,
      message,
      raw,
      requestId,
      this.sessionId,
      this.generation,
      attempt,
      extraHeaders,
    );
    this.active.add(call);
    if (requestId !== undefined) this.requests.set(idKey(requestId), call);
    else {
      const cancelled = cancelledRequestId(message);
      if (cancelled !== undefined) this.cancelPost(cancelled);
    }
    // Header deadline only where the answer must come at once (notifications, responses,
    // initialize): a server in JSON-response mode sends no headers until a long tool call is done,
    // and undici's own connect timeout already catches an unreachable host.
    if (requestId === undefined || isInit) {
      call.timer = setTimeout(
        abortForTimeout,
        this.options.connectTimeoutMs,
        call,
        `no response within ${this.options.connectTimeoutMs} ms`,
      );
    }
    call.start(this.origin, this.path, 'POST', headers, raw ?? JSON.stringify(message), call);
    return call;
  }

  /**
   * The headers of a POST's answer are in (called by PostCall, inside undici's callback). A JSON
   * answer or an empty 2xx is handled when its body has ended (usually in the same read); anything
   * else is handled in a microtask, outside undici's parser, as it always was.
   */
  postAnswerStarted(call: PostCall): void {
    const status = call.status;
    if (status >= 200 && status < 300) {
      if (
        status === 202 ||
        status === 204 ||
        (call.header('content-type') ?? '').includes('application/json')
      ) {
        call.notifyAtEnd();
        return;
      }
    }
    queueMicrotask(() => this.postAnswered(call));
  }

  /**
   * The request is cancelled: its answer will never be read, so the POST (or the GET resuming its
   * stream) is aborted — undici closes that socket, and the upstream sees the client go — and
   * nothing is reported for it. The notifications/cancelled itself is still posted.
   */
  private cancelPost(id: JsonRpcId): void {
    const key = idKey(id);
    const call = this.requests.get(key);
    if (call === undefined) return;
    this.requests.delete(key);
    call.cancelled = true;
    const why = new Error('request cancelled');
    call.abort(why);
    call.resumeCall?.abort(why);
  }

  /** The exchange of a request is over: it no longer counts as awaited. */
  private forget(call: PostCall): void {
    this.active.delete(call);
    const id = call.requestId;
    if (id === undefined) return;
    const key = idKey(id);
    if (this.requests.get(key) === call) this.requests.delete(key);
  }

  /** A POST failed before its answer was read (called by PostCall). */
  postFailed(call: PostCall, err: Error): void {
    if (call.cancelled) {
      this.forget(call);
      call.finish();
      return;
    }
    if (call.status !== 0 && !this.closed) {
      this.logger.warn(
        `Reading the answer to ${(call.message as JsonRpcRequest).method ?? 'a response'} failed: ${describeError(err)}`,
      );
    }
    this.forget(call);
    // Refused, DNS, TLS, connect timeout: the POST never went out.
    const reached = call.status !== 0 || !neverConnected(err);
    if (!this.closed)
      this.requestFailed(call.message, `Upstream unreachable: ${describeError(err)}`, reached);
    call.finish();
  }

  /** Handles the answer to a POST; the exchange is over when this (or what it started) is done. */
  postAnswered(call: PostCall): void {
    let pending: Promise<void> | undefined;
    try {
      pending = this.handlePostResponse(call);
    } catch (err) {
      this.postBroken(call, err);
      return;
    }
    if (pending === undefined) this.postDone(call);
    else pending.then(postDoneOf.bind(undefined, this, call), postBrokenOf.bind(undefined, this, call));
  }

  postDone(call: PostCall): void {
    this.forget(call);
    call.finish();
  }

  postBroken(call: PostCall, err: unknown): void {
    if (!this.closed && !call.cancelled) {
      const message = call.message;
      this.logger.warn(
        `Reading the answer to ${(message as JsonRpcRequest).method ?? 'a response'} failed: ${describeError(err)}`,
      );
      this.requestFailed(message, `Upstream unreachable: ${describeError(err)}`);
    }
    this.postDone(call);
  }

  /** Acts on a POST's answer; returns a promise only when reading or waiting goes on. */
  private handlePostResponse(res: PostCall): Promise<void> | undefined {
    const status = res.status;
    const message = res.message;
    const method = (message as JsonRpcRequest).method;
    if (method === Method.Initialize && res.ok) {
      const sid = res.header(Header.SessionId);
      if (sid) this.sessionId = sid;
      this.needsHandshake = false;
    }
    if (status === 404 && res.sentSession !== undefined && method !== Method.Initialize) {
      res.discard();
      this.sessionExpired(message, res.raw, res.sentSession, res.generation, res.attempt, res.extraHeaders);
      return undefined;
    }
    if (status >= 500) {
      res.discard();
      this.requestFailed(message, `Upstream unreachable: HTTP ${status}`);
      return undefined;
    }
    if (status >= 300) return this.readRefusal(res);
    this.failures = 0;
    if (status === 202 || status === 204) {
      res.discard();
      if (method === Method.Initialized) this.receiver.openStandalone();
      // A request answered 202 gets its response on the GET stream; nothing to wait for here.
      return undefined;
    }
    const type = res.header('content-type') ?? '';
    if (type.includes('text/event-stream')) return this.receiver.readPostStream(res);
    if (!type.includes('application/json')) {
      res.discard();
      if (res.requestId !== undefined) {
        this.requestFailed(message, `Upstream unreachable: unexpected content-type "${type}"`);
      }
      return undefined;
    }
    if (this.gate.paused || !res.complete) return this.readPostJson(res);
    this.postJson(res, res.takeText());
    return undefined;
  }

  /** A JSON answer: deliver it; a request it did not answer gets an error (there is nothing to resume). */
  private postJson(res: PostCall, text: string): void {
    if (!isBlank(text)) this.deliverText(text, res);
    if ((res.message as JsonRpcRequest).method === Method.Initialized) this.receiver.openStandalone();
    if (res.requestId !== undefined && !res.answered && !res.cancelled && !this.closed) {
      this.requestFailed(res.message, 'Upstream unreachable: the response stream closed before the answer');
    }
  }

  private async readPostJson(res: PostCall): Promise<void> {
    if (this.gate.paused) await this.gate.wait();
    // Usually the body came with the headers: no need to wait for it.
    this.postJson(res, res.complete ? res.takeText() : await res.text());
  }

  private async readRefusal(res: PostCall): Promise<void> {
    const text = await readSmallText(res);
    this.refused(res.message, res.status, text);
  }

  /** 3xx/4xx (other than an expired session): pass on the upstream's error, or say what happened. */
  private refused(message: JsonRpcMessage, status: number, text: string): void {
    if (!isRequest(message)) {
      this.logger.warn(
        `Upstream refused ${(message as JsonRpcRequest).method ?? 'a response'}: HTTP ${status}`,
      );
      return;
    }
    if (this.handshake.isInternal(message.id)) {
      this.replayFailed(`HTTP ${status}`);
      return;
    }
    const e = errorObjectOf(text);
    const response = e
      ? errorResponse(message.id, e.code, e.message, e.data)
      : errorResponse(
          message.id,
          ErrorCode.UpstreamUnavailable,
          `Upstream refused the request: HTTP ${status}`,
        );
    this.sink?.upstreamMessage(response, undefined, message.id);
  }

  /**
   * Answers a request that could not be delivered; other messages are only logged. `reached`
   * false: the request provably never reached the upstream (answerNotSent).
   */
  requestFailed(message: JsonRpcMessage, why: string, reached = true): void {
    this.failures++;
    if (!isRequest(message)) {
      this.logger.warn(`Could not deliver ${(message as JsonRpcRequest).method ?? 'a response'}: ${why}`);
      return;
    }
    if (this.handshake.isInternal(message.id)) {
      this.replayFailed(why);
      return;
    }
    if (!reached) {
      answerNotSent(this.sink, message.id, why);
      return;
    }
    this.sink?.upstreamMessage(
      errorResponse(message.id, ErrorCode.UpstreamUnavailable, why),
      undefined,
      message.id,
    );
  }

  // ------------------------------------------------------------------------------ session expiry

  /** The upstream answered 404 for our session id: it forgot the session (restart, idle expiry). */
  private sessionExpired(
    message: JsonRpcMessage,
    raw: string | undefined,
    sentSession: string,
    generation: number,
    attempt: number,
    extraHeaders: MessageHeaders | undefined,
  ): void {
    if (attempt >= 1 || !this.handshake.recorded) {
      this.requestFailed(
        message,
        'Upstream unavailable: upstream session expired and could not be re-established',
      );
      return;
    }
    if (generation !== this.generation || (this.sessionId !== undefined && this.sessionId !== sentSession)) {
      // Another message already re-established the session: just send this one again.
      if (this.handshake.replaying) this.hold(message, raw, attempt + 1, extraHeaders);
      else this.post(message, raw, attempt + 1, extraHeaders);
      return;
    }
    this.hold(message, raw, attempt + 1, extraHeaders);
    this.beginReplay();
  }

  /** Replays the client's initialize on a fresh upstream session; client messages wait meanwhile. */
  private beginReplay(): void {
    if (this.handshake.replaying || this.closed) return;
    const init = this.handshake.startReplay();
    if (!init) {
      this.replayFailed('the client never initialized');
      return;
    }
    this.logger.warn('Upstream session lost: replaying the initialize handshake');
    this.generation++;
    this.sessionId = undefined;
    this.needsHandshake = true;
    this.receiver.stopStandalone();
    this.post(init, undefined, 0);
  }

  private async finishReplay(): Promise<void> {
    const initialized = this.handshake.initialized;
    // The initialized notification must be in before the held requests, so wait for its 202.
    if (initialized) await this.post(initialized, undefined, 0).done();
    this.flushHeld();
  }

  private replayFailed(why: string): void {
    this.handshake.abortReplay();
    this.needsHandshake = true;
    this.logger.warn(`Re-initializing the upstream session failed: ${why}`);
    // Held messages were never written: they may go to another replica.
    for (const h of this.held.drain())
      this.requestFailed(h.message, `Upstream unavailable: re-initialize failed: ${why}`, false);
  }

  private flushHeld(): void {
    for (const h of this.held.drain()) this.post(h.message, h.raw, h.attempt, h.headers);
  }

  // ------------------------------------------------------------------------------ receiving

  /** The upstream session's generation (ReceiverOwner): a stream loop of an older one stops. */
  get sessionGeneration(): number {
    return this.generation;
  }

  /** An upstream session is established (ReceiverOwner). */
  get hasSession(): boolean {
    return this.sessionId !== undefined;
  }

  /** Fresh headers of a GET inside the upstream session (ReceiverOwner). */
  sessionHeaders(): Record<string, string> {
    return this.headers(true);
  }

  /** The standalone GET found the session gone: re-establish it now, so server-initiated messages keep flowing. */
  sessionGone(): void {
    if (this.handshake.recorded && !this.handshake.replaying) this.beginReplay();
  }

  /** Parses one JSON body or SSE data field and hands its message(s) to the sink. */
  deliverText(text: string, stream: AnswerTarget): void {
    const parsed = parseUpstreamText(text);
    if (typeof parsed === 'string') {
      this.logger.warn(`Dropped an upstream message: ${parsed}`);
      return;
    }
    if (Array.isArray(parsed)) {
      // A 2025-03-26 batch: the session serialises each message itself.
      for (const m of parsed) this.deliver(m, undefined, stream);
    } else {
      this.deliver(parsed, text, stream);
    }
  }

  private deliver(message: JsonRpcMessage, raw: string | undefined, stream: AnswerTarget): void {
    if (stream.requestId !== undefined && isResponse(message) && message.id === stream.requestId) {
      stream.answered = true;
    }
    const step = this.handshake.incoming(message);
    if (step === HandshakeStep.Deliver) {
      this.sink?.upstreamMessage(message, raw, stream.requestId);
    } else if (step === HandshakeStep.Replayed) {
      void this.finishReplay();
    } else if (step === HandshakeStep.ReplayFailed) {
      this.replayFailed((message as { error: { message: string } }).error.message);
    }
  }
}
