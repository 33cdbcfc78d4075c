/**
 * A bare HTTP/1.1 client connection: one keep-alive socket, one request at a time.
 *
 * Why not node:http's client: on a 2-core machine the load generator competes with the
 * process under test for CPU, and node:http's per-request machinery (ClientRequest, agent
 * bookkeeping, header validation, IncomingMessage streams) costs several times what the
 * bytes need. A closed-loop MCP session never pipelines, so a socket, a preformatted request
 * head and a small response parser (Content-Length or chunked) are all it takes.
 */
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  /** Lower-cased header names; repeated headers keep the last value (enough for MCP). */
  headers: Record<string, string>;
  body: string;
}

const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

interface Pending {
  resolve(res: RawResponse): void;
  reject(err: Error): void;
}

export class Http1Connection {
  private socket: Socket | undefined;
  private buffer: Buffer | undefined;
  private pending: Pending | undefined;
  /** Set when the response has neither Content-Length nor chunked framing: it ends at close. */
  private closeDelimited: { status: number; headers: Record<string, string>; bodyStart: number } | undefined;
  private readonly hostHeader: string;

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {
    this.hostHeader = `${host}:${port}`;
  }

  /**
   * Sends one request. `headers` is a preformatted block of `name: value\r\n` lines (the
   * session's constant headers), so a request costs one string concatenation.
   */
  request(method: string, path: string, headers: string, body?: string): Promise<RawResponse> {
    if (this.pending) return Promise.reject(new Error('Http1Connection: one request at a time'));
    const socket = this.socket ?? this.open();
    const length = body === undefined ? 0 : Buffer.byteLength(body);
    const head = `${method} ${path} HTTP/1.1\r\nhost: ${this.hostHeader}\r\n${headers}content-length: ${length}\r\n\r\n`;
    return new Promise<RawResponse>((resolve, reject) => {
      this.pending = { resolve, reject };
      socket.write(body === undefined ? head : head + body);
    });
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }

  private open(): Socket {
    const socket = connect({ host: this.host, port: this.port, noDelay: true });
    this.socket = socket;
    this.buffer = undefined;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd(socket));
    socket.on('close', () =>
      this.onClose(socket, new Error('socket closed before the response was complete')),
    );
    socket.on('error', (err) => this.onClose(socket, err));
    return socket;
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer === undefined ? chunk : Buffer.concat([this.buffer, chunk]);
    if (!this.pending || this.closeDelimited) return;
    try {
      this.tryParse();
    } catch (err) {
      // A response this parser cannot frame leaves the socket unusable: fail the request, reconnect next time.
      const socket = this.socket!;
      this.onClose(socket, err as Error);
      socket.destroy();
    }
  }

  private onEnd(socket: Socket): void {
    if (socket !== this.socket) return;
    const cd = this.closeDelimited;
    if (cd && this.pending) {
      const body = this.buffer ? this.buffer.toString('utf8', cd.bodyStart) : '';
      this.finish({ status: cd.status, headers: cd.headers, body }, true);
    }
  }

  private onClose(socket: Socket, err: Error): void {
    if (socket !== this.socket) return;
    this.socket = undefined;
    this.buffer = undefined;
    this.closeDelimited = undefined;
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(err);
  }

  private tryParse(): void {
    const buf = this.buffer!;
    const headEnd = buf.indexOf(HEAD_END);
    if (headEnd === -1) return;
    const lines = buf.toString('latin1', 0, headEnd).split('\r\n');
    const status = Number(lines[0].slice(9, 12));
    const headers: Record<string, string> = {};
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(':');
      if (colon > 0)
        headers[lines[i].slice(0, colon).trim().toLowerCase()] = lines[i].slice(colon + 1).trim();
    }
    const bodyStart = headEnd + 4;
    const noBody = status === 204 || status === 304 || (status >= 100 && status < 200);
    const length = headers['content-length'];
    if (noBody || length !== undefined) {
      const end = bodyStart + (noBody ? 0 : Number(length));
      if (buf.length < end) return;
      this.consume(end, { status, headers, body: buf.toString('utf8', bodyStart, end) });
    } else if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
      const decoded = decodeChunked(buf, bodyStart);
      if (!decoded) return;
      this.consume(decoded.end, { status, headers, body: decoded.body });
    } else {
      this.closeDelimited = { status, headers, bodyStart };
    }
  }

  private consume(end: number, res: RawResponse): void {
    const rest = this.buffer!.length > end ? this.buffer!.subarray(end) : undefined;
    this.buffer = rest;
    this.finish(res, res.headers['connection']?.toLowerCase() === 'close');
  }

  private finish(res: RawResponse, closeAfter: boolean): void {
    const pending = this.pending!;
    this.pending = undefined;
    this.closeDelimited = undefined;
    if (closeAfter) {
      const socket = this.socket;
      this.socket = undefined;
      this.buffer = undefined;
      socket?.destroy();
    }
    pending.resolve(res);
  }
}

/** Decodes a complete chunked body starting at `start`, or returns undefined if more bytes are needed. */
function decodeChunked(buf: Buffer, start: number): { body: string; end: number } | undefined {
  const parts: Buffer[] = [];
  let pos = start;
  for (;;) {
    const lineEnd = buf.indexOf(CRLF, pos);
    if (lineEnd === -1) return undefined;
    const size = parseInt(buf.toString('latin1', pos, lineEnd).split(';')[0], 16);
    if (Number.isNaN(size)) throw new Error('malformed chunked encoding');
    pos = lineEnd + 2;
    if (size === 0) {
      // No trailers: the next line is empty. With trailers: skip to the blank line after them.
      if (buf.length < pos + 2) return undefined;
      if (buf[pos] === 13 && buf[pos + 1] === 10) pos += 2;
      else {
        const trailersEnd = buf.indexOf(HEAD_END, pos - 2);
        if (trailersEnd === -1) return undefined;
        pos = trailersEnd + 4;
      }
      return { body: Buffer.concat(parts).toString('utf8'), end: pos };
    }
    if (buf.length < pos + size + 2) return undefined;
    parts.push(buf.subarray(pos, pos + size));
    pos += size + 2;
  }
}
