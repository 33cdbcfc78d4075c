import type { ServerResponse } from 'node:http';
import { isResponse, type JsonRpcMessage } from '../../../libs/protocol/src';
import type { ChannelKind, ChannelListener, ClientChannel } from '../../session/client-channel';
import { SseChannel, type SseChannelOptions } from '../http/sse-channel';

/** How a POST's response is written. */
export const enum ResponseMode {
  /** Not decided yet: JSON if the first message is the final answer, SSE otherwise (before 2025-11-25). */
  Lazy = 0,
  /** One application/json body (an object, or an array for a 2025-03-26 batch). */
  Json = 1,
  /** text/event-stream. */
  Sse = 2,
}

/**
 * The ClientChannel of one Streamable HTTP POST: its response is either one JSON body or an
 * SSE stream. Sessions speaking 2025-11-25 or later get SSE at once (priming event, `retry:`)
 * so a cut connection can always be resumed; older ones are answered lazily — a single
 * request whose first message is its own answer gets `application/json`, anything else
 * (progress, server requests, a slow batch) switches the response to SSE.
 *
 * The SSE writing is delegated to an SseChannel over the same response; this object is that
 * channel's listener and reports drain/close to the session as itself.
 */
export class PostChannel implements ClientChannel, ChannelListener {
  readonly kind: ChannelKind = 'streamable';
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

  /** Opens the SSE response now with a priming event (2025-11-25+): the client can resume from it. */
  prime(eventId: string): void {
    this.mode = ResponseMode.Sse;
    this.sse.open(this.extraHeaders);
    this.sse.prime(eventId);
  }

  send(seq: number, stream: number, raw: string): boolean {
    if (this.closed) return false;
    if (this.mode === ResponseMode.Sse) return this.sse.send(seq, stream, raw);
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

  /** Called on the next tick after the first message: not ended yet, so more is coming — stream it. */
  decide(): void {
    if (this.mode === ResponseMode.Lazy && !this.closed) this.switchToSse();
  }

  end(): void {
    if (this.closed) return;
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
    this.finished = true;
    // Before anything was written this becomes an HTTP error (a closed session reads as 404).
    this.sse.close(code >= 400 && code < 600 ? code : 404, reason);
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

  private switchToSse(): void {
    this.mode = ResponseMode.Sse;
    this.sse.open(this.extraHeaders);
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
