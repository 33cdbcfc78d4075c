/** Largest SSE event (or partial line) accepted; past it the stream is treated as broken. */
export const MAX_SSE_EVENT_CHARS = 64 * 1024 * 1024;

/** Receives parsed SSE events; one object per stream so no closure is made per event. */
export interface SseHandler {
  /**
   * A dispatched event. `event` is 'message' when the server named none; `id` is this event's own
   * `id:` field (undefined when it had none), which resumable streams use as a sequence number.
   */
  sseEvent(data: string, event: string, id: string | undefined): void;
  /** A `retry:` field: how long to wait before reconnecting. */
  sseRetry(ms: number): void;
}

/**
 * An incremental parser for text/event-stream (WHATWG HTML §9.2.6): LF, CR and CRLF line ends
 * (also split across chunks), comments, multi-line data, `id` (kept in lastEventId, also from
 * events without data, which is how 2025-11-25 priming events carry their id), `retry`.
 *
 * By default events whose data is empty or blank are not dispatched: priming events and
 * keep-alives carry no message. With `dispatchEmpty` every event that had any field is dispatched,
 * empty data included: a client needs a priming event's id (the stream a POST's response is on).
 */
export class SseParser {
  /** The last event id the server gave (survives across events, as the spec's "last event ID"). */
  lastEventId: string | undefined = undefined;
  private partial = '';
  private data = '';
  private hasData = false;
  private event = '';
  /** This event's own `id:` field. */
  private id: string | undefined = undefined;
  /** This event had a field other than data (only looked at with dispatchEmpty). */
  private hasFields = false;
  private pendingCr = false;
  private started = false;
  private readonly decoder = new TextDecoder();

  constructor(
    private readonly handler: SseHandler,
    private readonly dispatchEmpty = false,
  ) {}

  /** Forgets half-read input (a new connection), keeping lastEventId for the resume. */
  reset(): void {
    this.partial = '';
    this.data = '';
    this.hasData = false;
    this.event = '';
    this.id = undefined;
    this.hasFields = false;
    this.pendingCr = false;
    this.started = false;
    // A fresh decoder state: a multi-byte character cut by a dropped connection is gone.
    this.decoder.decode();
  }

  /** End of stream: an event without its closing blank line is discarded, as the standard says. */
  end(): void {
    this.reset();
  }

  pushBytes(chunk: Uint8Array): void {
    this.push(this.decoder.decode(chunk, { stream: true }));
  }

  push(text: string): void {
    const len = text.length;
    if (len === 0) return;
    let pos = 0;
    if (!this.started) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) pos = 1; // a BOM may open the stream
    }
    if (this.pendingCr) {
      // The previous chunk ended in CR: an LF here belongs to that line end.
      this.pendingCr = false;
      if (text.charCodeAt(pos) === 10) pos++;
    }
    // indexOf keeps the scan in native code; the CR position is cached because most streams have none.
    let nextCr = text.indexOf('\r', pos);
    let nextLf = text.indexOf('\n', pos);
    while (pos < len) {
      if (nextCr !== -1 && nextCr < pos) nextCr = text.indexOf('\r', pos);
      if (nextLf !== -1 && nextLf < pos) nextLf = text.indexOf('\n', pos);
      let end: number;
      let isCr = false;
      if (nextCr !== -1 && (nextLf === -1 || nextCr < nextLf)) {
        end = nextCr;
        isCr = true;
      } else if (nextLf !== -1) {
        end = nextLf;
      } else {
        this.partial += text.slice(pos);
        if (this.partial.length > MAX_SSE_EVENT_CHARS) throw new Error('SSE line too long');
        return;
      }
      const piece = text.slice(pos, end);
      const line = this.partial.length === 0 ? piece : this.partial + piece;
      this.partial = '';
      pos = end + 1;
      if (isCr) {
        if (pos === len) this.pendingCr = true;
        else if (text.charCodeAt(pos) === 10) pos++;
      }
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line.length === 0) {
      this.dispatch();
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' comment, e.g. keep-alive */) return;
    const colon = line.indexOf(':');
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = '';
    } else {
      field = line.slice(0, colon);
      const start = line.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1;
      value = line.slice(start);
    }
    switch (field) {
      case 'data':
        this.data = this.hasData ? this.data + '\n' + value : value;
        this.hasData = true;
        if (this.data.length > MAX_SSE_EVENT_CHARS) throw new Error('SSE event too large');
        break;
      case 'event':
        this.event = value;
        this.hasFields = true;
        break;
      case 'id':
        // The standard ignores ids containing NUL.
        if (value.indexOf('\0') === -1) {
          this.id = value;
          this.lastEventId = value;
          this.hasFields = true;
        }
        break;
      case 'retry':
        if (/^\d+$/.test(value)) {
          this.hasFields = true;
          this.handler.sseRetry(Number(value));
        }
        break;
      default:
        break; // unknown fields are ignored, as the spec says
    }
  }

  private dispatch(): void {
    const data = this.data;
    const hasData = this.hasData;
    const event = this.event;
    const id = this.id;
    const hasFields = this.hasFields;
    this.data = '';
    this.hasData = false;
    this.event = '';
    this.id = undefined;
    this.hasFields = false;
    if (this.dispatchEmpty) {
      if (!hasData && !hasFields) return;
    } else if (!hasData || data.trim().length === 0) {
      return;
    }
    this.handler.sseEvent(data, event.length === 0 ? 'message' : event, id);
  }
}
