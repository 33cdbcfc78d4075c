import type { ServerResponse } from 'node:http';
import { isResponse, type JsonRpcId, type JsonRpcMessage } from '../../../libs/protocol/src/jsonrpc';
import type { ChannelListener, ClientChannel } from '../../session/client-channel';
import type { ClientTransport } from '../../core/transport-kind';
import type { Session } from '../../session/session';
import type { Admission } from '../../policy/admission';
import type { Identity } from '../../policy/identity';
import { closeWhenInvalid, SseChannel, type SseChannelOptions } from '../http/sse-channel';

/** How a POST's response is written. */
export const enum ResponseMode {
  /** Not decided yet: JSON if the first message is the final answer, SSE otherwise (before 2025-11-25). */
  Lazy = 0,
  /** One application/json body (an object, or an array for a 2025-03-26 batch). */
  Json = 1,
  /** text/event-stream. */
  Sse = 2,
  /**
   * text/event-stream with a priming event (2025-11-25+), nothing written yet: the priming event
   * goes out with the first message, or on its own at the PrimingScheduler's deadline.
   */
  SsePrimed = 3,
}

/**
 * How long a 2025-11-25 POST stream may hold its priming event back waiting for the first
 * message: between this and twice this (one shared interval, see PrimingScheduler).
 *
 * Why not at once: the upstream usually answers within a few milliseconds, and writing the
 * headers and priming event first and the answer later costs two writes (two syscalls, two
 * wake-ups of the client) where one will do; in the bench profile (fast upstream) that extra
 * write was ~15 % of the gateway's CPU. Held back, a quick answer goes out as one write with
 * Content-Length: same events, same ids. Why not application/json for a quick answer, which the
 * spec allows per request: for 2025-11-25 sessions we keep SSE with the priming event first (the
 * spec's SHOULD, so a cut connection can be resumed, and what our tests and clients rely on);
 * only its timing changes, by at most two periods, and a request that has not been answered by
 * then is primed on its own exactly as before. Under overload answers take longer than this and
 * the extra write comes back; a longer hold would save more but delay the priming further.
 */
export const PRIMING_DELAY_MS = 20;

/**
 * One interval for all POST streams whose priming event is being held back (not one timer per
 * request). Channels added during one period are primed at the end of the next, so each waits
 * between one and two periods; the interval stops when nothing waits.
 */
export class PrimingScheduler {
  private current: PostChannel[] = [];
  private previous: PostChannel[] = [];
  /** The emptied array of the last tick: channels re-added while a tick runs go here, not into it. */
  private spare: PostChannel[] = [];
  private timer: NodeJS.Timeout | undefined = undefined;

  constructor(private readonly periodMs: number) {}

  add(channel: PostChannel): void {
    this.current.push(channel);
    if (!this.timer) {
      this.timer = setInterval(primingTick, this.periodMs, this);
      this.timer.unref();
    }
  }

  tick(): void {
    const due = this.previous;
    this.previous = this.current;
    this.current = this.spare;
    for (let i = 0; i < due.length; i++) due[i].primeDue();
    due.length = 0;
    this.spare = due;
    if (this.previous.length === 0 && this.current.length === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.current = [];
    this.previous = [];
    this.spare = [];
  }
}

function primingTick(scheduler: PrimingScheduler): void {
  scheduler.tick();
}

/**
 * The ClientChannel of one Streamable HTTP POST: its response is either one JSON body or an
 * SSE stream. Sessions speaking 2025-11-25 or later always get SSE (priming event, `retry:`)
 * so a cut connection can always be resumed — the priming event goes out with the first message
 * or at the priming deadline (see PRIMING_DELAY_MS); older ones are answered lazily — a single
 * request whose first message is its own answer gets `application/json`, anything else
 * (progress, server requests, a slow batch) switches the response to SSE.
 *
 * The SSE writing is delegated to an SseChannel over the same response; this object is that
 * channel's listener and reports drain/close to the session as itself.
 */
export class PostChannel implements ClientChannel, ChannelListener {
  readonly kind: ClientTransport = 'streamable';
  listener: ChannelListener | undefined = undefined;
  readonly sse: SseChannel;
  mode: ResponseMode;
  /** Response headers that must go out whatever the mode (e.g. Mcp-Session-Id after initialize). */
  private extraHeaders: Record<string, string> | undefined;
  /** Lazy single request: the first message, held until we know whether more follow. */
  private held: string | undefined = undefined;
  private heldSeq = 0;
  private heldStream = 0;
  /** Lazy batch: the responses collected for the JSON array (seq/stream kept to switch to SSE). */
  private collected: Array<{ seq: number; stream: number; raw: string }> | undefined;
  private finished = false;
  /** SsePrimed: the priming event's id, until it is written. */
  private primeId: string | undefined = undefined;
  /** SsePrimed: the priming event and the messages so far, waiting for end() or the next tick. */
  private pending: string | undefined = undefined;
  /** SsePrimed: how many messages `pending` holds, and the raw text of the last one. */
  private pendingCount = 0;
  private pendingLast: string | undefined = undefined;
  /**
   * The only message so far refuses its request for now (pool exhausted): if the response
   * ends with nothing else, it goes out as HTTP 429 with Retry-After instead of 200.
   */
  private refusal: { raw: string; retryAfterMs: number } | undefined = undefined;
  /**
   * SsePrimed, one request: the session and id to ask whether it still waits for a pooled
   * checkout. While it does, the priming event is held back (up to `holdUntil`), so that a
   * refusal at the end of the wait can still be an HTTP 429 with Retry-After.
   */
  private queuedOn: Session | undefined = undefined;
  private queuedId: JsonRpcId = 0;
  private holdUntil = 0;
  private scheduler: PrimingScheduler | undefined = undefined;
  /** The credential the POST was made with, watched once its answer streams (see watchCredential). */
  private credential: Identity | undefined = undefined;
  private revocations: Pick<Admission, 'watch' | 'unwatch'> | undefined = undefined;

  constructor(
    readonly res: ServerResponse,
    options: SseChannelOptions,
    mode: ResponseMode,
    batch: boolean,
    extraHeaders?: Record<string, string>,
  ) {
    this.sse = new SseChannel(res, options);
    this.sse.listener = this;
    this.mode = mode;
    this.extraHeaders = extraHeaders;
    this.collected = batch && mode === ResponseMode.Lazy ? [] : undefined;
  }

  get bufferedBytes(): number {
    return this.res.writableLength;
  }

  get closed(): boolean {
    return this.finished || this.sse.closed;
  }

  /**
   * Ends the response like a GET stream (4401 / 4403, see closeWhenInvalid) if `identity` stops
   * holding while the answer is still streaming. Only a response that starts streaming is
   * watched: one answered at once needs none of it (no closure or map entry per request).
   */
  watchCredential(identity: Identity, revocations: Pick<Admission, 'watch' | 'unwatch'> | undefined): void {
    this.credential = identity;
    this.revocations = revocations;
  }

  /** The SSE response was just opened and stays open: from here it can outlive its credential. */
  private streaming(): void {
    const identity = this.credential;
    if (identity === undefined || this.closed) return;
    this.credential = undefined;
    closeWhenInvalid(this, this.res, identity, this.revocations);
  }

  /** Opens the SSE response now with a priming event (2025-11-25+): the client can resume from it. */
  prime(eventId: string): void {
    this.mode = ResponseMode.Sse;
    this.sse.openWith(this.sse.primeText(eventId), this.extraHeaders);
    this.streaming();
  }

  /**
   * Chooses SSE with a priming event (2025-11-25+) but writes nothing yet: the priming event goes
   * out together with the first message, or alone when `scheduler` says it is due (PRIMING_DELAY_MS).
   */
  primeLater(eventId: string, scheduler: PrimingScheduler): void {
    this.mode = ResponseMode.SsePrimed;
    this.primeId = eventId;
    this.scheduler = scheduler;
    scheduler.add(this);
  }

  /**
   * The POST's one request `id` may wait for a pooled checkout: its priming is held back while
   * it waits (bounded by the pool's acquire timeout). Once carried, the priming rules apply.
   */
  holdWhileQueued(session: Session, id: JsonRpcId): void {
    if (this.mode !== ResponseMode.SsePrimed) return;
    this.queuedOn = session;
    this.queuedId = id;
  }

  /** The priming deadline passed: prime now unless something was (or is about to be) written. */
  primeDue(): void {
    if (this.mode !== ResponseMode.SsePrimed || this.pending !== undefined || this.closed) return;
    if (this.queuedOn !== undefined && this.stillQueued()) return;
    this.flushPrimed();
  }

  /** True (and due again at the next tick) while the request waits for a checkout, within the bound. */
  private stillQueued(): boolean {
    const wait = this.queuedOn!.checkoutWait(this.queuedId);
    const now = Date.now();
    // The bound is taken at the first hold: a pool that never decides cannot hold the stream forever.
    if (wait > 0 && this.holdUntil === 0) this.holdUntil = now + wait + PRIMING_DELAY_MS;
    if (wait <= 0 || now >= this.holdUntil) {
      this.queuedOn = undefined;
      return false;
    }
    this.scheduler!.add(this);
    return true;
  }

  send(seq: number, stream: number, raw: string): boolean {
    if (this.closed) return false;
    if (this.mode === ResponseMode.Sse) return this.sse.send(seq, stream, raw);
    if (this.mode === ResponseMode.SsePrimed) {
      // Held for this tick: the session ends the channel in the same tick as it delivers the
      // final answer, and then the whole response goes out in one write.
      const event = this.sse.eventText(seq, stream, raw);
      if (this.pending === undefined) {
        this.pending = this.sse.primeText(this.primeId!) + event;
        process.nextTick(flushPrimedSoon, this);
      } else {
        this.pending += event;
      }
      this.pendingCount++;
      this.pendingLast = raw;
      return true;
    }
    if (this.collected) {
      // Batch: keep collecting while only responses arrive; anything else means streaming.
      if (isResponse(JSON.parse(raw) as JsonRpcMessage)) {
        this.collected.push({ seq, stream, raw });
        return true;
      }
      this.switchToSse();
      return this.sse.send(seq, stream, raw);
    }
    if (this.held === undefined) {
      // The session ends the channel in the same tick as it delivers the final answer, so
      // "ended before the next tick" means "this was the answer": no parse needed to decide.
      this.held = raw;
      this.heldSeq = seq;
      this.heldStream = stream;
      process.nextTick(decideLazy, this);
      return true;
    }
    this.switchToSse();
    return this.sse.send(seq, stream, raw);
  }

  /**
   * The message just sent refuses its request (overload): remembered only while it is the one
   * message of a response nothing has been written of, so end() can turn it into a 429.
   */
  refusedLast(retryAfterMs: number): void {
    if (this.closed || this.collected) return;
    let raw: string | undefined;
    if (this.mode === ResponseMode.Lazy) raw = this.held;
    else if (this.mode === ResponseMode.SsePrimed && this.pendingCount === 1) raw = this.pendingLast;
    if (raw !== undefined) this.refusal = { raw, retryAfterMs };
  }

  /** Called on the next tick after the first message: not ended yet, so more is coming — stream it. */
  decide(): void {
    if (this.mode === ResponseMode.Lazy && !this.closed) this.switchToSse();
  }

  /** Next tick after the first held message of an SsePrimed stream: not ended, so stream from here. */
  flushPending(): void {
    if (this.mode === ResponseMode.SsePrimed && this.pending !== undefined && !this.closed)
      this.flushPrimed();
  }

  end(): void {
    if (this.closed) return;
    const refusal = this.refusal;
    if (
      refusal !== undefined &&
      ((this.mode === ResponseMode.Lazy && this.held === refusal.raw) ||
        (this.mode === ResponseMode.SsePrimed && this.pendingCount === 1))
    ) {
      this.writeRefusal(refusal.raw, refusal.retryAfterMs);
      return;
    }
    if (this.mode === ResponseMode.SsePrimed) {
      // Everything is known: the priming event and the messages, in one write with Content-Length.
      const events = this.pending ?? this.sse.primeText(this.primeId!);
      this.pending = undefined;
      this.primeId = undefined;
      this.mode = ResponseMode.Sse;
      this.finished = true;
      this.sse.complete(events, this.extraHeaders);
      return;
    }
    if (this.mode === ResponseMode.Lazy) {
      if (this.collected && this.collected.length > 0) {
        // A batch is always answered with an array, even when it held one request.
        this.writeJson(`[${this.collected.map((c) => c.raw).join(',')}]`);
        return;
      }
      if (this.held !== undefined) {
        this.writeJson(this.held);
        return;
      }
    }
    if (!this.sse.opened) this.sse.open(this.extraHeaders);
    this.finished = true;
    this.sse.end();
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    // A primed stream counts as open (as if the priming event had gone out at once): it ends as a stream.
    if (this.mode === ResponseMode.SsePrimed) this.flushPrimed();
    this.finished = true;
    // Before anything was written this becomes an HTTP error (a closed session reads as 404);
    // an open stream ends with an error event that carries the session's own code.
    this.sse.close(code, reason, code >= 400 && code < 600 ? code : 404);
  }

  // ChannelListener of the inner SseChannel: report as this channel.
  channelDrained(): void {
    this.listener?.channelDrained(this);
  }

  channelClosed(): void {
    const listener = this.listener;
    this.listener = undefined;
    if (listener) listener.channelClosed(this);
  }

  /** Writes the SSE headers, the priming event and whatever was held; streams from then on. */
  private flushPrimed(): void {
    const events = this.pending ?? this.sse.primeText(this.primeId!);
    this.pending = undefined;
    this.primeId = undefined;
    this.mode = ResponseMode.Sse;
    this.sse.openWith(events, this.extraHeaders);
    this.streaming();
  }

  private switchToSse(): void {
    this.mode = ResponseMode.Sse;
    this.sse.open(this.extraHeaders);
    this.streaming();
    if (this.held !== undefined) {
      const raw = this.held;
      this.held = undefined;
      this.sse.send(this.heldSeq, this.heldStream, raw);
    }
    if (this.collected) {
      const collected = this.collected;
      this.collected = undefined;
      for (const c of collected) this.sse.send(c.seq, c.stream, c.raw);
    }
  }

  /**
   * The request was refused before it ran (pool exhausted): 429 with Retry-After for HTTP
   * clients, the JSON-RPC error (with data.retryAfterMs) as the body for MCP clients. No event
   * id was written, so there is nothing to resume: the client retries the request.
   */
  private writeRefusal(body: string, retryAfterMs: number): void {
    this.mode = ResponseMode.Json;
    this.finished = true;
    this.held = undefined;
    this.pending = undefined;
    this.pendingLast = undefined;
    this.primeId = undefined;
    this.refusal = undefined;
    const res = this.res;
    if (res.headersSent || res.destroyed) return;
    // No Mcp-Session-Id even for an initialize: a refused initialize ends its session.
    res.writeHead(429, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))),
    });
    res.end(body);
  }

  private writeJson(body: string): void {
    this.mode = ResponseMode.Json;
    this.finished = true;
    this.held = undefined;
    this.collected = undefined;
    const res = this.res;
    if (res.headersSent || res.destroyed) return;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
    };
    if (this.extraHeaders) Object.assign(headers, this.extraHeaders);
    res.writeHead(200, headers);
    res.end(body);
  }
}

function decideLazy(channel: PostChannel): void {
  channel.decide();
}

function flushPrimedSoon(channel: PostChannel): void {
  channel.flushPending();
}
