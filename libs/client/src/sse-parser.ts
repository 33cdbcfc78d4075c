/**
 * An incremental parser for `text/event-stream` (the WHATWG "server-sent events" format),
 * for reading fetch() bodies chunk by chunk. Written here rather than taken from a
 * package because the resilient client needs each event's own `id` (its sequence number),
 * which EventSource-style clients fold into a single "last event id".
 */
export interface SseEvent {
  /** `event:` field; "message" when absent. */
  event: string;
  /** `data:` lines joined with "\n". Empty for a priming event (`data:` with nothing after it). */
  data: string;
  /** `id:` field of this event, when it had one. */
  id: string | undefined;
  /** `retry:` field of this event, when it had a valid one. */
  retry: number | undefined;
}

export class SseParser {
  /** The last id seen on the stream, as EventSource keeps it (what Last-Event-ID would carry). */
  lastEventId = '';
  private buffer = '';
  private readonly decoder = new TextDecoder();
  private started = false;
  /** The previous chunk ended with "\r": a "\n" at the start of the next one belongs to it. */
  private pendingCr = false;
  // Fields of the event being assembled.
  private eventType = '';
  private data: string[] = [];
  private id: string | undefined = undefined;
  private retry: number | undefined = undefined;
  private hasFields = false;

  constructor(private readonly onEvent: (event: SseEvent) => void) {}

  /** Feeds bytes (or text) as they arrive; complete events are dispatched synchronously. */
  push(chunk: Uint8Array | string): void {
    let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.pendingCr) {
      this.pendingCr = false;
      if (text.startsWith('\n')) text = text.slice(1);
    }
    this.buffer += text;
    this.drainLines();
  }

  /** End of stream: an event without its closing blank line is discarded, as the standard says. */
  end(): void {
    const tail = this.decoder.decode();
    if (tail) this.push(tail);
    this.buffer = '';
    this.resetEvent();
  }

  private drainLines(): void {
    let start = 0;
    const buf = this.buffer;
    for (;;) {
      let i = start;
      while (i < buf.length) {
        const c = buf.charCodeAt(i);
        if (c === 10 /* \n */ || c === 13 /* \r */) break;
        i++;
      }
      if (i >= buf.length) break;
      const line = buf.slice(start, i);
      if (buf.charCodeAt(i) === 13) {
        if (i + 1 < buf.length) {
          start = buf.charCodeAt(i + 1) === 10 ? i + 2 : i + 1;
        } else {
          // "\r" at the very end: a "\n" may follow in the next chunk.
          this.pendingCr = true;
          start = i + 1;
        }
      } else {
        start = i + 1;
      }
      this.line(line);
    }
    this.buffer = start === 0 ? buf : buf.slice(start);
  }

  private line(line: string): void {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line.charCodeAt(0) === 58 /* : */) return; // comment (keep-alive)
    const colon = line.indexOf(':');
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = '';
    } else {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 32) value = value.slice(1);
    }
    switch (field) {
      case 'event':
        this.eventType = value;
        this.hasFields = true;
        break;
      case 'data':
        this.data.push(value);
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
          this.retry = Number(value);
          this.hasFields = true;
        }
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  private dispatch(): void {
    if (this.hasFields) {
      // Unlike EventSource, events with an id but no data (2025-11-25 priming events) are
      // dispatched too: their id is the stream number a POST's response belongs to.
      this.onEvent({
        event: this.eventType || 'message',
        data: this.data.join('\n'),
        id: this.id,
        retry: this.retry,
      });
    }
    this.resetEvent();
  }

  private resetEvent(): void {
    this.eventType = '';
    this.data = [];
    this.id = undefined;
    this.retry = undefined;
    this.hasFields = false;
  }
}
