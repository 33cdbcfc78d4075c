import type { IncomingHttpHeaders } from 'node:http';
import { Agent, Pool, type Dispatcher } from 'undici';
import type { JsonRpcErrorObject } from '../../libs/protocol/src/jsonrpc';

// ---------------------------------------------------------------------------------------------
// HTTP client (undici's dispatcher API, shared by the HTTP upstreams)
// ---------------------------------------------------------------------------------------------

/**
 * One keep-alive connection pool per upstream origin for the whole process: undici's Agent keeps a
 * Pool per origin, made by `factory` with the size the pool layer registered for that origin
 * ({@link HttpPools}) and a keep-alive timeout below the upstreams' own (see configure()).
 *
 * The dispatcher API instead of fetch: fetch wraps every exchange in Request/Response/Headers
 * objects, WHATWG streams and an AbortSignal, which cost more CPU than the forwarding itself at a
 * few thousand requests a second. Here one small handler object per exchange gets the status, the
 * headers and the body chunks directly.
 */

/**
 * Socket budgets per upstream origin. The pool layer registers, per replica, how many sockets it
 * may need at once (a pooled service: its pool max × (2 + maxConcurrentPerConnection) — one
 * standalone GET, the POSTs it carries, one more for a ping or a DELETE); `undefined` means
 * unbounded (dedicated mode: one standalone GET per client session). An origin's undici Pool is
 * sized from the sum when it is first used, so register before the first exchange.
 */
class HttpPools {
  private keepAliveMs = 4000;
  private fixed = 0;
  private readonly budgets = new Map<string, Map<string, number | undefined>>();

  /** Process-wide settings (UPSTREAM_HTTP_KEEPALIVE_MS, UPSTREAM_HTTP_CONNECTIONS). */
  configure(keepAliveMs: number, connections: number): void {
    this.keepAliveMs = keepAliveMs;
    this.fixed = connections;
  }

  /** `replica` at `url` needs up to `sockets` at once on its origin (undefined: no bound). */
  register(url: string, replica: string, sockets: number | undefined): void {
    const origin = originOf(url);
    let byReplica = this.budgets.get(origin);
    if (!byReplica) this.budgets.set(origin, (byReplica = new Map()));
    byReplica.set(replica, sockets);
  }

  /** The size of an origin's pool: a fixed setting, else the registered sum (null: unbounded). */
  connectionsFor(origin: string): number | null {
    if (this.fixed > 0) return this.fixed;
    const byReplica = this.budgets.get(origin);
    if (!byReplica || byReplica.size === 0) return null;
    let sum = 0;
    for (const n of byReplica.values()) {
      if (n === undefined) return null;
      sum += n;
    }
    return sum;
  }

  /** Options of an origin's undici Pool. */
  poolOptions(origin: string): Pool.Options {
    return {
      connections: this.connectionsFor(originOf(origin)),
      // undici also honours a shorter `Keep-Alive: timeout=` hint from the server, minus a margin.
      keepAliveTimeout: this.keepAliveMs,
      keepAliveMaxTimeout: this.keepAliveMs,
    };
  }
}

/** Error codes of a connection that was never established: no byte of a request went out. */
const NOT_CONNECTED = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
]);

/**
 * True when an exchange failed while connecting (refused, DNS, TLS handshake, connect timeout), so
 * the request provably never reached the upstream. A failure on an established connection (reset,
 * closed mid-answer) is not: the upstream may have read the request.
 */
export function neverConnected(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; depth++) {
    if (typeof e.code === 'string' && NOT_CONNECTED.has(e.code)) return true;
    e = e.cause as typeof e;
  }
  return false;
}

/** `scheme://host:port` as undici keys its pools (default ports dropped, as URL does). */
function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

export const httpPools = new HttpPools();

const agent = new Agent({
  factory: (origin, options) => new Pool(origin, { ...options, ...httpPools.poolOptions(String(origin)) }),
});

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
// Small helpers of the HTTP upstreams
// ---------------------------------------------------------------------------------------------

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
