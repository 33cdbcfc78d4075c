import type { ServerResponse } from 'node:http';
import type { Admission } from '../../policy/admission';
import type { Identity } from '../../policy/identity';
import type { ChannelListener, ClientChannel } from '../../session/client-channel';
import type { ClientTransport } from '../../core/transport-kind';
import { ErrorCode } from '../../../libs/protocol/src/jsonrpc';
import { EndReason, toCloseCode } from '../../core/end-reason';
import type { KeepAliveTicker } from './keep-alive-ticker';

export interface SseChannelOptions {
  kind: ClientTransport;
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
  readonly kind: ClientTransport;
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
    // A stream reads nothing from its request; a body left unread (a GET that carries one) fills
    // the socket's buffer, Node stops reading the socket, and a client that goes away is not
    // noticed until a write fails. Discard what is left of it.
    const req = res.req as ServerResponse['req'] | undefined;
    if (req !== undefined && !req.complete) req.resume();
  }

  /** Sends the status line and SSE headers (plus `retry:`); idempotent. */
  open(extraHeaders?: Record<string, string>): void {
    this.openWith('', extraHeaders);
  }

  /**
   * Like open(), with `events` (SSE text from primeText/eventText) written in the same chunk as
   * the `retry:` field: one write instead of several. When already open, just writes `events`.
   * Returns what `res.write()` said (false: the client is slow, wait for drain).
   */
  openWith(events: string, extraHeaders?: Record<string, string>): boolean {
    if (this.closed) return false;
    if (this.headersWritten) return events.length > 0 ? this.write(events) : true;
    this.headersWritten = true;
    this.res.writeHead(200, extraHeaders ? { ...SSE_HEADERS, ...extraHeaders } : SSE_HEADERS);
    this.options.keepAlive?.add(this);
    const first = this.retryField() + events;
    if (first.length > 0) return this.write(first);
    this.res.flushHeaders();
    return true;
  }

  /**
   * The whole stream at once, when every event is known before anything was written (a quick
   * answer): headers with Content-Length and the body in one write, so the response costs one
   * syscall and the client sees it complete. The events are the same as when streamed.
   */
  complete(events: string, extraHeaders?: Record<string, string>): void {
    if (this.closed) return;
    if (this.headersWritten || this.res.headersSent) {
      this.openWith(events, extraHeaders);
      this.end();
      return;
    }
    this.headersWritten = true;
    this.closed = true;
    const body = this.retryField() + events;
    const headers: Record<string, string> = {
      ...SSE_HEADERS,
      'content-length': String(Buffer.byteLength(body)),
    };
    if (extraHeaders) Object.assign(headers, extraHeaders);
    this.res.writeHead(200, headers);
    this.res.end(body);
  }

  /** The priming event: an id and empty data (see prime()). */
  primeText(eventId: string): string {
    return `id: ${eventId}\ndata: \n\n`;
  }

  /** One message as an SSE event with its id. */
  eventText(seq: number, stream: number, raw: string): string {
    // JSON from an upstream may be pretty-printed; every line needs its own data: field.
    const data = raw.indexOf('\n') === -1 ? raw : raw.split(/\r?\n/).join('\ndata: ');
    return `id: ${this.options.eventId(stream, seq)}\nevent: message\ndata: ${data}\n\n`;
  }

  private retryField(): string {
    return this.options.retryMs !== undefined ? `retry: ${this.options.retryMs}\n\n` : '';
  }

  get bufferedBytes(): number {
    return this.res.writableLength;
  }

  get opened(): boolean {
    return this.headersWritten;
  }

  /** An event with an id and empty data: lets the client resume even if nothing else arrives (2025-11-25). */
  prime(eventId: string): void {
    this.openWith(this.primeText(eventId));
  }

  /**
   * A named event (legacy `endpoint`, `error`). With `seq` it carries the event id of that
   * position, so a client that reconnects before any message still names its session and
   * what it has (EventSource sends the id of the last event that had one).
   */
  event(name: string, data: string, seq?: number): void {
    this.open();
    const id = seq === undefined ? '' : `id: ${this.options.eventId(0, seq)}\n`;
    this.write(`${id}event: ${name}\ndata: ${data}\n\n`);
  }

  send(seq: number, stream: number, raw: string): boolean {
    if (this.closed) return false;
    return this.openWith(this.eventText(seq, stream, raw));
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

  /**
   * Ends the stream and says why: a last `error` event (no id: it is not a position to resume
   * from) with the JSON-RPC error code a client acts on (−31005: the session is gone, start
   * over), the reason, and `closeCode` from the WebSocket close-code table (4001 ended, 4008
   * overflow, 4002 moved, 1001 shutdown) for the detail. Before headers went out it becomes an
   * HTTP error with a JSON-RPC body instead (`unopenedStatus`, or the code when it is an HTTP
   * status, else 410).
   */
  close(code: number, reason: string, unopenedStatus?: number): void {
    if (this.closed) return;
    this.closed = true;
    this.options.keepAlive?.delete(this);
    if (!this.headersWritten && !this.res.headersSent) {
      const status = unopenedStatus ?? (code >= 400 && code < 600 ? code : 410);
      this.res.writeHead(status, { 'content-type': 'application/json' });
      this.res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: reason } }));
      return;
    }
    if (this.headersWritten && !this.res.destroyed) {
      const closeCode = toCloseCode(code);
      const error = { code: rpcCodeOf(closeCode), message: reason, closeCode };
      this.write(`event: error\ndata: ${JSON.stringify(error)}\n\n`);
    }
    this.res.end();
  }

  private write(chunk: string): boolean {
    this.lastWrite = Date.now();
    return this.res.write(chunk);
  }
}

/** The JSON-RPC error code an SSE `error` event carries for a close code (as the SSE client reads it). */
function rpcCodeOf(closeCode: number): number {
  switch (closeCode) {
    case EndReason.SessionEnded:
    case EndReason.SessionNotFound:
    case EndReason.OutboxOverflow:
      return ErrorCode.SessionNotFound;
    case EndReason.ResumeUnavailable:
      return ErrorCode.ResumeUnavailable;
    case EndReason.TransportSwitchRefused:
      return ErrorCode.TransportSwitchRefused;
    default:
      // Moved elsewhere, shutting down, internal: JSON-RPC's generic server error; closeCode says which.
      return -32000;
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

/**
 * Ends an SSE stream when the credential it was opened with stops holding, as a WebSocket is:
 * 4401 when it expires (one timer per such stream) or its API key is removed, 4403 when its client
 * is disabled (`revocations` watches it). The session stays resumable with a valid credential.
 */
export function closeWhenInvalid(
  channel: Pick<SseChannel, 'close'>,
  res: ServerResponse,
  identity: Identity,
  revocations: Pick<Admission, 'watch' | 'unwatch'> | undefined,
): void {
  const expiresAt = identity.expiresAt;
  const timer =
    expiresAt === undefined
      ? undefined
      : setTimeout(
          () =>
            channel.close(
              EndReason.CredentialExpired,
              'the access token expired: reconnect with a fresh one',
            ),
          Math.max(0, expiresAt - Date.now()),
        );
  timer?.unref();
  revocations?.watch(channel, identity);
  res.once('close', () => {
    if (timer !== undefined) clearTimeout(timer);
    revocations?.unwatch(channel);
  });
}
