/** A minimal SSE client for tests: reads events from a fetch() response body as they arrive. */
export interface SseEvent {
  id?: string;
  event: string;
  data: string;
  retry?: number;
}

export class SseReader {
  private buffer = '';
  private readonly decoder = new TextDecoder();
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  /** The most recent `retry:` value seen. */
  retry: number | undefined;

  constructor(response: Response) {
    if (!response.body) throw new Error('response has no body');
    this.reader = response.body.getReader();
  }

  /** The next event, or undefined when the stream ended. Rejects after `timeoutMs`. */
  async next(timeoutMs = 10_000): Promise<SseEvent | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const event = this.take();
      if (event) return event;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error('timed out waiting for an SSE event');
      let timer: NodeJS.Timeout | undefined;
      const chunk = await Promise.race([
        this.reader.read(),
        new Promise<never>((_, fail) => {
          timer = setTimeout(() => fail(new Error('timed out waiting for an SSE event')), remaining);
        }),
      ]).finally(() => clearTimeout(timer));
      if (chunk.done) return this.take(true);
      this.buffer += this.decoder.decode(chunk.value, { stream: true });
    }
  }

  /** Next event that carries a JSON-RPC message (skips priming, endpoint and comments). */
  async nextMessage(timeoutMs = 10_000): Promise<{ id?: string; message: any } | undefined> {
    for (;;) {
      const e = await this.next(timeoutMs);
      if (!e) return undefined;
      if (e.event === 'message' && e.data.trim() !== '') return { id: e.id, message: JSON.parse(e.data) };
    }
  }

  async cancel(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
  }

  private take(final = false): SseEvent | undefined {
    for (;;) {
      const end = this.buffer.search(/\r?\n\r?\n/);
      if (end === -1) {
        if (final && this.buffer.trim()) {
          const rest = this.buffer;
          this.buffer = '';
          return this.parse(rest);
        }
        return undefined;
      }
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end).replace(/^\r?\n\r?\n/, '');
      const event = this.parse(block);
      if (event) return event;
    }
  }

  private parse(block: string): SseEvent | undefined {
    const data: string[] = [];
    let id: string | undefined;
    let event = 'message';
    let sawField = false;
    for (const line of block.split(/\r?\n/)) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
      else if (field === 'event') event = value;
      else if (field === 'retry') {
        this.retry = Number(value);
        continue;
      } else continue;
      sawField = true;
    }
    if (!sawField) return undefined;
    return { id, event, data: data.join('\n') };
  }
}
