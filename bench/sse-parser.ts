/**
 * Minimal incremental text/event-stream parser: enough of the WHATWG rules for MCP
 * (event, data, id; comments and retry ignored). Chunks may split lines anywhere.
 */
export class SseParser {
  private buffer = '';
  private event = '';
  private data = '';
  private hasData = false;

  constructor(private readonly onEvent: (event: string, data: string) => void) {}

  push(chunk: string): void {
    this.buffer = this.buffer.length === 0 ? chunk : this.buffer + chunk;
    let start = 0;
    for (;;) {
      const nl = this.buffer.indexOf('\n', start);
      if (nl === -1) break;
      const end = nl > start && this.buffer.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      this.line(this.buffer.slice(start, end));
      start = nl + 1;
    }
    this.buffer = start === 0 ? this.buffer : this.buffer.slice(start);
  }

  private line(line: string): void {
    if (line.length === 0) {
      // As WHATWG says, an event whose data is empty is not dispatched: that is how servers
      // send priming events that carry only an id (Streamable HTTP resumability).
      if (this.hasData && this.data.length > 0) this.onEvent(this.event || 'message', this.data);
      this.event = '';
      this.data = '';
      this.hasData = false;
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' comment */) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') {
      this.data = this.hasData ? `${this.data}\n${value}` : value;
      this.hasData = true;
    } else if (field === 'event') {
      this.event = value;
    }
  }
}
