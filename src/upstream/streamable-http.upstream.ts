import type { IncomingHttpHeaders } from 'node:http';
import { Logger } from '@nestjs/common';
import { Agent, type Dispatcher } from 'undici';
import {
  checkShape,
  ErrorCode,
  errorResponse,
  Header,
  isRequest,
  isResponse,
  Method,
  type JsonRpcErrorObject,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcRequest,
  SseParser,
  type SseHandler,
} from '../../libs/protocol/src';
import type { ReplicaConfig } from '../config/gateway-config';
import type { UpstreamOptions } from './upstream.factory';
import type { MessageHeaders, UpstreamConnection, UpstreamSink } from './upstream-connection';
import { backoffDelay, describeError, HandshakeStep, UpstreamHandshake } from './upstream-handshake';

type HttpReplica = Extract<ReplicaConfig, { transport: 'streamable-http' | 'sse' }>;

/** Messages held while the upstream session is being re-established. */
const MAX_HELD = 10_000;
/** DELETE at close is a courtesy: never let it hold shutdown up for long. */
const DELETE_TIMEOUT_MS = 1000;
/** Consecutive failed requests after which healthy() says no (the pool then validates/evicts). */
const UNHEALTHY_AFTER_FAILURES = 3;
/** A GET stream that stayed open this long ended normally (e.g. an idle proxy cut it). */
const STABLE_STREAM_MS = 5000;

// ---------------------------------------------------------------------------------------------
// HTTP client (undici's dispatcher API, shared with the legacy SSE upstream)
// ---------------------------------------------------------------------------------------------

/**
 * One keep-alive connection pool per upstream origin for the whole process (undici's Agent keeps a
 * Pool per origin), with undici's defaults — the same ones Node's fetch uses.
 *
 * The dispatcher API instead of fetch: fetch wraps every exchange in Request/Response/Headers
 * objects, WHATWG streams and an AbortSignal, which cost more CPU than the forwarding itself at a
 * few thousand requests a second. Here one small handler object per exchange gets the status, the
 * headers and the body chunks directly.
 */
const agent = new Agent();

/** Something an exchange can be aborted through (an HttpCall, or a test's stand-in). */
export interface Abortable {
  abort(reason: Error): void;
}

export function abortForTimeout(target: Abortable, what: string): void {
  target.abort(new Error(what));
}

/** Receives the body of an HttpCall chunk by chunk (see {@link HttpCall.stream}). */
export interface ChunkSink {
  chunk(bytes: Buffer): void;
}

const enum BodyMode {
  /** Nobody asked for the body yet: chunks are kept. */
  Buffer = 0,
  /** text(): chunks are kept until the end (bounded). */
  Collect = 1,
  /** stream(): chunks go to the sink as they arrive. */
  Stream = 2,
  /** discard(): chunks are dropped (bounded; past the bound the exchange is aborted). */
  Discard = 3,
  /** notifyAtEnd(): chunks are kept and the listener is called at the end. */
  Notify = 4,
}

/**
 * Callbacks instead of promises, for exchanges made once per message (see {@link HttpCall.start}):
 * the headers, the end of a body read with notifyAtEnd(), and errors before the headers or during
 * such a body. Body readers started with text()/stream() still settle their promises.
 */
export interface HttpCallListener {
  callHeaders(call: HttpCall): void;
  callBody(call: HttpCall): void;
  callFailed(call: HttpCall, err: Error): void;
}

/** What a discarded body may still carry before we cut the connection rather than read it all. */
const DISCARD_LIMIT = 64 * 1024;

/**
 * One HTTP exchange with an upstream, as an undici dispatch handler. {@link HttpCall.send} resolves
 * when the status and headers are in (like fetch); the body is then read with text(), stream() or
 * discard(). Errors before the headers reject send(); errors after them reject the body reader.
 */
export class HttpCall implements Dispatcher.DispatchHandler, Abortable {
  status = 0;
  headers: IncomingHttpHeaders = NO_HEADERS;
  private controller: Dispatcher.DispatchController | undefined = undefined;
  private abortReason: Error | undefined = undefined;
  private mode = BodyMode.Buffer;
  private chunks: Buffer[] | undefined = undefined;
  private received = 0;
  private limit = 0;
  private ended = false;
  private error: Error | undefined = undefined;
  private sink: ChunkSink | undefined = undefined;
  private gate: PauseGate | undefined = undefined;
  /** Settles send() (headers) and then the body reader: one pending promise at a time. */
  private resolveWait: ((value: unknown) => void) | undefined = undefined;
  private rejectWait: ((err: Error) => void) | undefined = undefined;
  private listener: HttpCallListener | undefined = undefined;

  /** Starts the exchange; resolves with this call once the response headers are in. */
  send(
    origin: string,
    path: string,
    method: Dispatcher.HttpMethod,
    headers: Record<string, string>,
    body: string | undefined,
  ): Promise<HttpCall> {
    const waited = this.wait<HttpCall>();
    agent.dispatch({ origin, path, method, headers, body }, this);
    return waited;
  }

  /** Starts the exchange without a promise: `listener` hears of the headers (or the failure). */
  start(
    origin: string,
    path: string,
    method: Dispatcher.HttpMethod,
    headers: Record<string, string>,
    body: string | undefined,
    listener: HttpCallListener,
  ): void {
    this.listener = listener;
    try {
      agent.dispatch({ origin, path, method, headers, body }, this);
    } catch (err) {
      this.onResponseError(undefined, err as Error);
    }
  }

  /** Keeps the body and calls the listener's callBody at its end (or callFailed if it breaks). */
  notifyAtEnd(): void {
    this.mode = BodyMode.Notify;
    if (this.error) this.listener!.callFailed(this, this.error);
    else if (this.ended) this.listener!.callBody(this);
  }

  /** The whole body is in (and no error): text() would resolve at once. */
  get complete(): boolean {
    return this.ended && this.error === undefined;
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** A response header as one string (the first value when repeated). */
  header(name: string): string | undefined {
    const v = this.headers[name];
    return typeof v === 'string' ? v : Array.isArray(v) ? v[0] : undefined;
  }

  abort(reason: Error): void {
    if (this.ended || this.error) return;
    this.abortReason = reason;
    // Not on a socket yet: onRequestStart aborts it as soon as undici hands it one.
    if (this.controller) this.controller.abort(reason);
  }

  /**
   * The whole body as text. Past `limit` bytes the connection is cut and what arrived is returned;
   * with `tolerant` a broken body also gives what arrived instead of rejecting.
   */
  text(limit = Number.MAX_SAFE_INTEGER, tolerant = false): Promise<string> {
    this.mode = BodyMode.Collect;
    this.limit = limit;
    if (this.error) return tolerant ? Promise.resolve(this.takeText()) : Promise.reject(this.error);
    if (this.ended) return Promise.resolve(this.takeText());
    const read = this.wait<void>();
    const take = takeTextOf.bind(undefined, this);
    return tolerant ? read.then(take, take) : read.then(take);
  }

  /**
   * Hands every body chunk to `sink` as it arrives; resolves at the end of the body. While `gate`
   * is paused no more is read (TCP then pushes back on the upstream).
   */
  stream(sink: ChunkSink, gate: PauseGate | undefined): Promise<void> {
    this.mode = BodyMode.Stream;
    this.sink = sink;
    this.gate = gate;
    const kept = this.chunks;
    this.chunks = undefined;
    if (kept) for (const c of kept) if (!this.deliverChunk(c)) break;
    if (this.error) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve();
    return this.wait<void>();
  }

  /** Drops the body (so the socket can be reused); a long one is cut off instead. */
  discard(): void {
    this.mode = BodyMode.Discard;
    this.chunks = undefined;
    if (this.ended || this.error) return;
    if (this.received > DISCARD_LIMIT || this.header('content-type')?.includes('text/event-stream')) {
      this.abort(new Error('body discarded'));
    }
  }

  // ------------------------------------------------------------------ undici DispatchHandler

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortReason) controller.abort(this.abortReason);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    this.status = statusCode;
    this.headers = headers;
    if (this.listener !== undefined) this.listener.callHeaders(this);
    else this.settle(this, undefined);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.received += chunk.length;
    switch (this.mode) {
      case BodyMode.Stream:
        this.deliverChunk(chunk);
        return;
      case BodyMode.Discard:
        if (this.received > DISCARD_LIMIT) controller.abort(new Error('body discarded'));
        return;
      case BodyMode.Collect:
        if (this.received > this.limit) {
          // Enough to explain a failure: stop reading and give back what we have.
          (this.chunks ??= []).push(chunk);
          this.ended = true;
          controller.abort(new Error('body too large'));
          this.settle(undefined, undefined);
          return;
        }
        (this.chunks ??= []).push(chunk);
        return;
      default:
        (this.chunks ??= []).push(chunk);
    }
  }

  onResponseEnd(): void {
    this.ended = true;
    if (this.mode === BodyMode.Notify) this.listener!.callBody(this);
    else this.settle(undefined, undefined);
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    if (this.ended) return;
    // Network errors say which socket error it was, as fetch's "cause" does.
    const code = (err as { code?: unknown }).code;
    this.error = typeof code === 'string' && err !== this.abortReason ? new NetworkError(err) : err;
    const listener = this.listener;
    if (listener !== undefined && (this.status === 0 || this.mode === BodyMode.Notify)) {
      listener.callFailed(this, this.error);
    } else {
      this.settle(undefined, this.error);
    }
  }

  // ------------------------------------------------------------------ internals

  /** Passes one chunk to the stream sink; false when the exchange stopped meanwhile. */
  private deliverChunk(chunk: Buffer): boolean {
    try {
      this.sink!.chunk(chunk);
    } catch (err) {
      this.abort(err as Error);
      return false;
    }
    const gate = this.gate;
    if (gate?.paused && this.controller && !this.controller.paused) {
      this.controller.pause();
      gate.wait().then(resumeCall.bind(undefined, this), ignore);
    }
    return true;
  }

  /** Called when the pause gate opens again. */
  resumeReading(): void {
    const controller = this.controller;
    if (controller && controller.paused && !controller.aborted) controller.resume();
  }

  /** The collected body as text (once). */
  takeText(): string {
    const chunks = this.chunks;
    this.chunks = undefined;
    if (!chunks) return '';
    return chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8');
  }

  private wait<T>(): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.resolveWait = resolve as (value: unknown) => void;
      this.rejectWait = reject;
    });
  }

  private settle(value: unknown, err: Error | undefined): void {
    const resolve = this.resolveWait;
    const reject = this.rejectWait;
    this.resolveWait = undefined;
    this.rejectWait = undefined;
    if (err) reject?.(err);
    else resolve?.(value);
  }
}

const NO_HEADERS: IncomingHttpHeaders = {};

function takeTextOf(call: HttpCall): string {
  return call.takeText();
}

function resumeCall(call: HttpCall): void {
  call.resumeReading();
}

/** A socket-level failure, worded like fetch's ("fetch failed" with the socket error as cause). */
class NetworkError extends Error {
  constructor(cause: Error) {
    super('fetch failed', { cause });
  }
}

// ---------------------------------------------------------------------------------------------
// Small shared helpers
// ---------------------------------------------------------------------------------------------

/** Parses one message or a batch without the result wrapper parseJsonRpc allocates. */
export function parseUpstreamText(text: string): JsonRpcMessage | JsonRpcMessage[] | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `invalid JSON: ${(err as Error).message}`;
  }
  if (Array.isArray(value)) {
    for (const item of value) {
      const reason = checkShape(item);
      if (reason) return reason;
    }
    return value as JsonRpcMessage[];
  }
  return checkShape(value) ?? (value as JsonRpcMessage);
}

export function ignore(): void {
  // deliberately empty: best-effort operations whose failure changes nothing
}

/** Text of a small error body (bounded: a misbehaving server must not make us read megabytes). */
export function readSmallText(res: HttpCall, limit = 64 * 1024): Promise<string> {
  return res.text(limit, true);
}

/** The JSON-RPC error object inside an error body, if the upstream sent one. */
export function errorObjectOf(text: string): JsonRpcErrorObject | undefined {
  if (text.length === 0) return undefined;
  try {
    const value = JSON.parse(text) as { error?: JsonRpcErrorObject };
    const e = value?.error;
    if (e && typeof e.code === 'number' && typeof e.message === 'string') return e;
  } catch {
    // not JSON: the caller falls back to the HTTP status
  }
  return undefined;
}

/** A promise that is resolved by resume() — one per pause, not per message. */
export class PauseGate {
  paused = false;
  private promise: Promise<void> | undefined = undefined;
  private release: (() => void) | undefined = undefined;

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    const release = this.release;
    this.promise = undefined;
    this.release = undefined;
    release?.();
  }

  wait(): Promise<void> {
    if (!this.promise) this.promise = new Promise<void>((resolve) => (this.release = resolve));
    return this.promise;
  }
}

/** Cancellable sleeps, so close() never waits for a backoff timer and leaves none behind. */
export class Sleeper {
  private readonly pending = new Map<NodeJS.Timeout, () => void>();

  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(timer);
        resolve();
      }, ms);
      this.pending.set(timer, resolve);
    });
  }

  wakeAll(): void {
    for (const [timer, resolve] of this.pending) {
      clearTimeout(timer);
      resolve();
    }
    this.pending.clear();
  }
}

function withPostFields(headers: Record<string, string>): Record<string, string> {
  headers['content-type'] = 'application/json';
  headers.accept = 'application/json, text/event-stream';
  return headers;
}

// ---------------------------------------------------------------------------------------------
// Streamable HTTP upstream
// ---------------------------------------------------------------------------------------------

/** A message waiting to be (re-)sent; `attempt` counts session-expiry retries. */
interface Outgoing {
  message: JsonRpcMessage;
  raw: string | undefined;
  attempt: number;
  headers: MessageHeaders | undefined;
}

/** Where the messages of one answer go: the request it answers is marked answered when they do. */
interface AnswerTarget {
  readonly requestId: JsonRpcId | undefined;
  answered: boolean;
}

/**
 * One POST of a client message, and its state: undici's callbacks become method calls on the
 * upstream (HttpCallListener), so the common exchange needs no promise or closure.
 */
class PostCall extends HttpCall implements HttpCallListener, AnswerTarget {
  /** Header deadline (see post()). */
  timer: NodeJS.Timeout | undefined = undefined;
  /** A message in the answer was the response to requestId. */
  answered = false;
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
 * One SSE response stream: a POST's (carrying the answer to `requestId`), the same stream resumed
 * by GET + Last-Event-ID, or the standalone GET stream (`requestId` undefined).
 */
class StreamState implements SseHandler, ChunkSink, AnswerTarget {
  /** The response to requestId has arrived: nothing left to resume. */
  answered = false;
  /** The server's `retry:` hint (2025-11-25 polling: reconnect after this many ms). */
  retryMs: number | undefined = undefined;
  /** Messages delivered on this connection (a stream that carried something was not a failure). */
  delivered = 0;
  /** Made on first use: a JSON answer (the common case for quick requests) never needs one. */
  private sse: SseParser | undefined = undefined;

  constructor(
    private readonly owner: StreamableHttpUpstream,
    readonly requestId: JsonRpcId | undefined,
  ) {}

  get parser(): SseParser {
    if (!this.sse) this.sse = new SseParser(this);
    return this.sse;
  }

  /** A body chunk of the SSE response (ChunkSink). */
  chunk(bytes: Buffer): void {
    this.parser.pushBytes(bytes);
  }

  sseEvent(data: string, event: string): void {
    if (event !== 'message') return;
    this.delivered++;
    this.owner.deliverText(data, this);
  }

  sseRetry(ms: number): void {
    this.retryMs = ms;
  }
}

/**
 * A raw JSON-RPC client of the MCP Streamable HTTP transport (2025-03-26 … 2025-11-25) on undici's
 * dispatcher (see HttpCall). Every client message is one POST; the answer comes back as JSON or as an SSE stream that
 * may also carry the request's progress, logs and server→client requests (delivered with that
 * request's id as `related`). The standalone GET stream carries everything else.
 */
export class StreamableHttpUpstream implements UpstreamConnection {
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
  private held: Outgoing[] = [];
  /** True when the session was lost and the next send must replay the handshake first. */
  private needsHandshake = false;
  /** Standalone GET: 0 none, 1 running, 2 the server does not offer one (405). */
  private standalone = 0;
  private standaloneAbort: HttpCall | undefined = undefined;
  private readonly active = new Set<HttpCall>();
  /** See postHeaders(). */
  private sessionPostHeaders: Record<string, string> | undefined = undefined;
  private readonly gate = new PauseGate();
  private readonly sleeper = new Sleeper();

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
      this.requestFailed(message, 'Upstream unavailable: connection closed');
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
    this.held = [];
    this.sleeper.wakeAll();
    this.gate.resume();
    for (const call of this.active) call.abort(new Error('connection closed'));
    this.active.clear();
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
    if (this.held.length >= MAX_HELD) {
      this.requestFailed(message, 'Upstream unavailable: too many messages waiting for the upstream session');
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

  /** A POST failed before its answer was read (called by PostCall). */
  postFailed(call: PostCall, err: Error): void {
    if (call.status !== 0 && !this.closed) {
      this.logger.warn(
        `Reading the answer to ${(call.message as JsonRpcRequest).method ?? 'a response'} failed: ${describeError(err)}`,
      );
    }
    this.active.delete(call);
    if (!this.closed) this.requestFailed(call.message, `Upstream unreachable: ${describeError(err)}`);
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
    this.active.delete(call);
    call.finish();
  }

  postBroken(call: PostCall, err: unknown): void {
    if (!this.closed) {
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
      if (method === Method.Initialized) this.openStandalone();
      // A request answered 202 gets its response on the GET stream; nothing to wait for here.
      return undefined;
    }
    const type = res.header('content-type') ?? '';
    if (type.includes('text/event-stream')) return this.readPostSse(res);
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
    if ((res.message as JsonRpcRequest).method === Method.Initialized) this.openStandalone();
    if (res.requestId !== undefined && !res.answered && !this.closed) {
      this.requestFailed(res.message, 'Upstream unreachable: the response stream closed before the answer');
    }
  }

  private async readPostJson(res: PostCall): Promise<void> {
    if (this.gate.paused) await this.gate.wait();
    // Usually the body came with the headers: no need to wait for it.
    this.postJson(res, res.complete ? res.takeText() : await res.text());
  }

  private async readPostSse(res: PostCall): Promise<void> {
    const message = res.message;
    const stream = new StreamState(this, res.requestId);
    await this.readSse(res, stream);
    if ((message as JsonRpcRequest).method === Method.Initialized) this.openStandalone();
    if (res.requestId !== undefined && !stream.answered && !this.closed)
      await this.resumeOrFail(message, stream);
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

  /** Answers a request that could not be delivered; other messages are only logged. */
  private requestFailed(message: JsonRpcMessage, why: string): void {
    this.failures++;
    if (!isRequest(message)) {
      this.logger.warn(`Could not deliver ${(message as JsonRpcRequest).method ?? 'a response'}: ${why}`);
      return;
    }
    if (this.handshake.isInternal(message.id)) {
      this.replayFailed(why);
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
    this.stopStandalone();
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
    const held = this.held;
    this.held = [];
    for (const h of held) this.requestFailed(h.message, `Upstream unavailable: re-initialize failed: ${why}`);
  }

  private flushHeld(): void {
    const held = this.held;
    this.held = [];
    for (const h of held) this.post(h.message, h.raw, h.attempt, h.headers);
  }

  // ------------------------------------------------------------------------------ receiving

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

  /** Reads an SSE body until it ends, is aborted or breaks; pauses when the client is slow. */
  private async readSse(res: HttpCall, stream: StreamState): Promise<void> {
    try {
      // While the gate is paused nothing is read, so TCP pushes back on the upstream.
      await res.stream(stream, this.gate);
    } catch (err) {
      if (!this.closed) this.logger.debug(`SSE stream ended: ${describeError(err)}`);
    }
  }

  /**
   * The POST's stream ended before the response. With an event id the server lets us resume it
   * with GET + Last-Event-ID (and under 2025-11-25 polling it closes on purpose and expects us back
   * after `retry`); without one the answer is lost and the request gets an error.
   */
  private async resumeOrFail(message: JsonRpcMessage, stream: StreamState): Promise<void> {
    const requestId = stream.requestId!;
    const generation = this.generation;
    let failedAttempts = 0;
    while (!stream.answered && !this.closed) {
      const lastEventId = stream.parser.lastEventId;
      if (lastEventId === undefined || lastEventId === '') {
        this.requestFailed(message, 'Upstream unreachable: the response stream closed before the answer');
        return;
      }
      if (generation !== this.generation) {
        this.requestFailed(message, 'Upstream unavailable: upstream session was replaced before the answer');
        return;
      }
      await this.sleeper.sleep(
        stream.retryMs ?? backoffDelay(failedAttempts, this.options.retryMinMs, this.options.retryMaxMs),
      );
      if (this.closed) return;
      stream.parser.reset();
      stream.delivered = 0;
      const status = await this.get(stream, lastEventId, false);
      if (status === 200 && (stream.delivered > 0 || stream.parser.lastEventId !== lastEventId)) {
        failedAttempts = 0; // progress was made (polling): keep following the stream
        continue;
      }
      if (
        status === 404 ||
        status === 405 ||
        (status >= 400 && status < 500 && status !== 409 && status !== 429)
      ) {
        this.requestFailed(
          message,
          `Upstream unreachable: resuming the response stream failed: HTTP ${status}`,
        );
        return;
      }
      // A network error, 409/429, or a 200 that carried nothing: back off, and give up eventually.
      if (++failedAttempts > this.options.maxRestarts) {
        this.requestFailed(
          message,
          `Upstream unreachable: the response stream to request ${String(requestId)} could not be resumed`,
        );
        return;
      }
    }
  }

  /**
   * One GET (standalone stream, or a resume when lastEventId is set), read to its end.
   * Returns the HTTP status (200 when a stream was read), or 0 for a network error.
   */
  private async get(
    stream: StreamState,
    lastEventId: string | undefined,
    standalone: boolean,
  ): Promise<number> {
    const headers = this.headers(true);
    headers.accept = 'text/event-stream';
    if (lastEventId !== undefined) headers[Header.LastEventId] = lastEventId;
    const call = new HttpCall();
    this.active.add(call);
    if (standalone) this.standaloneAbort = call;
    const timer = setTimeout(
      abortForTimeout,
      this.options.connectTimeoutMs,
      call,
      `no response within ${this.options.connectTimeoutMs} ms`,
    );
    try {
      const res = await call.send(this.origin, this.path, 'GET', headers, undefined);
      clearTimeout(timer);
      const type = res.header('content-type') ?? '';
      if (res.status !== 200 || !type.includes('text/event-stream')) {
        res.discard();
        return res.status === 200 ? 415 : res.status;
      }
      await this.readSse(res, stream);
      return 200;
    } catch (err) {
      clearTimeout(timer);
      if (!this.closed) this.logger.debug(`GET stream failed: ${describeError(err)}`);
      return 0;
    } finally {
      this.active.delete(call);
      if (this.standaloneAbort === call) this.standaloneAbort = undefined;
    }
  }

  private openStandalone(): void {
    if (this.closed || this.standalone !== 0 || this.sessionId === undefined) return;
    this.standalone = 1;
    void this.runStandalone(this.generation);
  }

  private stopStandalone(): void {
    if (this.standalone === 1) this.standalone = 0;
    this.standaloneAbort?.abort(new Error('upstream session replaced'));
    this.standaloneAbort = undefined;
  }

  /** Keeps the standalone GET stream open for server-initiated messages, reconnecting as needed. */
  private async runStandalone(generation: number): Promise<void> {
    const stream = new StreamState(this, undefined);
    let failedAttempts = 0;
    while (!this.closed && generation === this.generation && this.standalone === 1) {
      stream.parser.reset();
      stream.delivered = 0;
      const openedAt = Date.now();
      const status = await this.get(stream, stream.parser.lastEventId || undefined, true);
      if (this.closed || generation !== this.generation) return;
      if (status === 405) {
        this.standalone = 2; // the server offers no GET stream: everything comes on POST streams
        return;
      }
      if (status === 404) {
        this.standalone = 0;
        // The session is gone; re-establish it now so server-initiated messages keep flowing.
        if (this.handshake.recorded && !this.handshake.replaying) this.beginReplay();
        return;
      }
      // A stream that carried something, asked for a `retry`, or simply lived a while was not a
      // failure (idle proxies cut long streams); one that closes at once, empty, is.
      const useful =
        status === 200 &&
        (stream.delivered > 0 || stream.retryMs !== undefined || Date.now() - openedAt >= STABLE_STREAM_MS);
      if (useful) failedAttempts = 0;
      else if (++failedAttempts > this.options.maxRestarts) {
        this.logger.warn(`Giving up on the standalone GET stream (last status ${status})`);
        this.standalone = 0;
        return;
      }
      const delay =
        useful && stream.retryMs !== undefined
          ? stream.retryMs
          : backoffDelay(failedAttempts, this.options.retryMinMs, this.options.retryMaxMs);
      await this.sleeper.sleep(delay);
    }
  }
}
