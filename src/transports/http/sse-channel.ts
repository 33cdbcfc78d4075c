import type { ServerResponse } from 'node:http';
import type { ChannelKind, ChannelListener, ClientChannel } from '../../session/client-channel';
import type { KeepAliveTicker } from './keep-alive-ticker';

export interface SseChannelOptions {
  kind: ChannelKind;
  /** `retry:` hint in ms written when the stream opens (undefined: none). */
  retryMs: number | undefined;
  /** Formats the SSE event id of a message. */
  eventId: (stream: number, seq: number) => string;
  keepAlive: KeepAliveTicker | undefined;
}

export const SSE_HEADERS: Record<string, string> = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  // Reverse proxies (nginx) must not buffer an event stream.
  'x-accel-buffering': 'no',
};

/**
 * A ClientChannel that writes Server-Sent Events to a raw Node response. Shared by the
 * Streamable HTTP streams and the legacy SSE transport. Backpressure comes straight from
 * `res.write()`; the response's 'drain' and 'close' become channelDrained/channelClosed.
 */
export class SseChannel implements ClientChannel {
  readonly kind: ChannelKind;
  listener: ChannelListener | undefined = undefined;
  closed = false;
  /** Last time something was written; the shared keep-alive ticker reads it. */
  lastWrite = Date.now();
  private headersWritten = false;

  constructor(
    readonly res: ServerResponse,
    readonly options: SseChannelOptions,
  ) {
    this.kind = options.kind;
    res.on('close', onResponseClose.bind(this));
    res.on('drain', onResponseDrain.bind(this));
  }

  /** Sends the status line and SSE headers (plus `retry:`); idempotent. */
  open(extraHeaders?: Record<string, string>): void {
    if (this.headersWritten || this.closed) return;
    this.headersWritten = true;
    this.res.writeHead(200, extraHeaders ? { ...SSE_HEADERS, ...extraHeaders } : SSE_HEADERS);
    if (this.options.retryMs !== undefined) this.res.write(`retry: ${this.options.retryMs}\n\n`);
    else this.res.flushHeaders();
    this.options.keepAlive?.add(this);
  }

  get bufferedBytes(): number {
    return this.res.writableLength;
  }

  get opened(): boolean {
    return this.headersWritten;
  }

  /** An event with an id and empty data: lets the client resume even if nothing else arrives (2025-11-25). */
  prime(eventId: string): void {
    this.open();
    this.write(`id: ${eventId}\ndata: \n\n`);
  }

  /** A named event without id (legacy `endpoint` event). */
  event(name: string, data: string): void {
    this.open();
    this.write(`event: ${name}\ndata: ${data}\n\n`);
  }

  send(seq: number, stream: number, raw: string): boolean {
    if (this.closed) return false;
    this.open();
    // JSON from an upstream may be pretty-printed; every line needs its own data: field.
    const data = raw.indexOf('\n') === -1 ? raw : raw.split(/\r?\n/).join('\ndata: ');
    return this.write(`id: ${this.options.eventId(stream, seq)}\nevent: message\ndata: ${data}\n\n`);
  }

  /** Comment line that keeps intermediaries from timing out an idle stream. */
  keepAlive(): void {
    if (!this.closed) this.write(': keep-alive\n\n');
  }

  end(): void {
    if (this.closed) return;
    this.open();
    this.closed = true;
    this.options.keepAlive?.delete(this);
    this.res.end();
  }

  /** Ends the stream; before headers went out it becomes an HTTP error with a JSON-RPC body. */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.options.keepAlive?.delete(this);
    if (!this.headersWritten && !this.res.headersSent) {
      const status = code >= 400 && code < 600 ? code : 410;
      this.res.writeHead(status, { 'content-type': 'application/json' });
      this.res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: reason } }));
      return;
    }
    this.res.end();
  }

  private write(chunk: string): boolean {
    this.lastWrite = Date.now();
    return this.res.write(chunk);
  }
}

// Module-level handlers bound once per channel (no closure per message).
function onResponseClose(this: SseChannel): void {
  this.closed = true;
  this.options.keepAlive?.delete(this);
  const listener = this.listener;
  this.listener = undefined;
  if (listener) listener.channelClosed(this);
}

function onResponseDrain(this: SseChannel): void {
  this.listener?.channelDrained(this);
}
