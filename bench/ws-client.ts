/**
 * The bench's WebSocket MCP client (the `ws` package): one connection per session, one
 * JSON-RPC message per text frame, subprotocol `mcp`. Shared by the load worker (closed loop
 * of tools/call) and the idle worker (connect, optionally warm up, then hold).
 *
 * The gateway's first frame is `notifications/gateway/session` (see
 * src/transports/ws/ws-channel.ts): a connection counts as open once it has arrived. Other
 * `notifications/gateway/*` frames are bookkeeping; the client follows the sequence number
 * they carry so it can acknowledge what it has (`notifications/gateway/ack`).
 */
import { connect, type Socket } from 'node:net';
import { WebSocket, type RawData } from 'ws';
import { settleOnce } from './settle-once';

export const MCP_SUBPROTOCOL = 'mcp';
const GATEWAY_SESSION = 'notifications/gateway/session';
const GATEWAY_POSITION = 'notifications/gateway/position';
const GATEWAY_PREFIX = 'notifications/gateway/';

export interface JsonRpcReply {
  id?: unknown;
  method?: string;
  params?: any;
  result?: any;
  error?: { code: number; message: string };
}

interface Waiter {
  resolve(reply: JsonRpcReply): void;
  reject(err: Error): void;
}

export interface WsClientOptions {
  /** Offer permessage-deflate (no context takeover, like the gateway's own settings). */
  compression: boolean;
  /** How long to wait for the upgrade and the session notification. */
  openTimeoutMs: number;
  /** Extra upgrade headers (credentials). */
  headers?: Record<string, string>;
}

/** One WebSocket connection to the gateway, with request/response matching by JSON-RPC id. */
export class WsClient {
  private ws: WebSocket | undefined;
  private socket: Socket | undefined;
  private readonly waiting = new Map<unknown, Waiter>();
  /** Set once the session notification arrived. */
  sessionId: string | undefined;
  /** Sequence number of the last message frame received (the resume/ack position). */
  seq = 0;
  /** Why the connection ended, when the target ended it. */
  closedBy: string | undefined;
  private closing = false;
  /** Called once if the connection ends while it was meant to stay open. */
  onDrop: ((why: string) => void) | undefined;

  constructor(
    private readonly url: string,
    private readonly options: WsClientOptions,
  ) {}

  /** Upgrades and waits for the gateway's session notification. */
  open(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const { settle, isSettled } = settleOnce(
        this.options.openTimeoutMs,
        `no session notification within ${this.options.openTimeoutMs} ms`,
        (err) => {
          if (err) {
            this.ws?.terminate();
            reject(err);
          } else resolve();
        },
      );
      const ws = new WebSocket(this.url, MCP_SUBPROTOCOL, {
        perMessageDeflate: this.options.compression
          ? { serverNoContextTakeover: true, clientNoContextTakeover: true }
          : false,
        // Our own socket, so bytes on the wire can be counted without reaching into ws.
        createConnection: (opts: any) => (this.socket = connect(opts)),
        // The gateway validates; the load generator's CPU is taken from the target's.
        skipUTF8Validation: true,
        maxPayload: 64 * 1024 * 1024,
        handshakeTimeout: this.options.openTimeoutMs,
        headers: this.options.headers,
      });
      this.ws = ws;
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c.length < 300 ? c : c.slice(0, 300)));
        res.on('end', () =>
          settle(new Error(`upgrade refused: HTTP ${res.statusCode} ${body.slice(0, 200)}`)),
        );
        res.on('error', () => settle(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
      });
      ws.on('error', (err: NodeJS.ErrnoException) => {
        const why = err.code ? `${err.code}: ${err.message}` : err.message;
        if (!isSettled()) settle(new Error(why));
        else this.ended(`error ${why}`);
      });
      ws.on('close', (code: number, reason: Buffer) => {
        const why = `closed by the target: ${code} ${reason.toString('utf8')}`.trim();
        if (!isSettled()) settle(new Error(why));
        this.ended(why);
      });
      ws.on('message', (data: RawData) => {
        let msg: JsonRpcReply;
        try {
          msg = JSON.parse(data.toString()) as JsonRpcReply;
        } catch {
          return;
        }
        if (!isSettled()) {
          if (msg.method !== GATEWAY_SESSION) {
            settle(new Error(`first frame is not ${GATEWAY_SESSION}: ${data.toString().slice(0, 200)}`));
            return;
          }
          this.sessionId = msg.params?.sessionId;
          this.seq = typeof msg.params?.seq === 'number' ? msg.params.seq : 0;
          settle();
          return;
        }
        this.onMessage(msg);
      });
    });
  }

  /** Sends a request and resolves with its answer. */
  request(id: number, body: string): Promise<JsonRpcReply> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error(this.closedBy ?? 'WebSocket not open'));
    }
    return new Promise<JsonRpcReply>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      ws.send(body);
    });
  }

  send(body: string): void {
    this.ws?.send(body);
  }

  /** Tells the gateway it may drop everything up to the last message received. */
  ack(): void {
    this.send(`{"jsonrpc":"2.0","method":"notifications/gateway/ack","params":{"seq":${this.seq}}}`);
  }

  /** Extensions the server accepted ('' = none). */
  get extensions(): string {
    return this.ws?.extensions ?? '';
  }

  /** TCP bytes so far, both directions (frames, handshake, compression included). */
  get wireBytes(): { sent: number; received: number } {
    return { sent: this.socket?.bytesWritten ?? 0, received: this.socket?.bytesRead ?? 0 };
  }

  /** Closes with 1000 (which ends the gateway session) and waits for the close, at most `ms`. */
  close(ms = 2_000): Promise<void> {
    const ws = this.ws;
    this.closing = true;
    if (!ws || ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        ws.terminate();
        resolve();
      }, ms);
      ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(1000);
    });
  }

  /** Drops the connection without a close handshake. */
  terminate(): void {
    this.closing = true;
    this.ws?.terminate();
  }

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  private onMessage(msg: JsonRpcReply): void {
    if (typeof msg.method === 'string' && msg.method.startsWith(GATEWAY_PREFIX)) {
      if (msg.method === GATEWAY_POSITION && typeof msg.params?.seq === 'number') this.seq = msg.params.seq;
      return;
    }
    this.seq++;
    if (msg.id === undefined || msg.method !== undefined) return;
    const waiter = this.waiting.get(msg.id);
    if (!waiter) return;
    this.waiting.delete(msg.id);
    waiter.resolve(msg);
  }

  private ended(why: string): void {
    if (this.closedBy !== undefined) return;
    this.closedBy = why;
    const err = new Error(why);
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
    if (!this.closing) this.onDrop?.(why);
  }
}

/** ws://host:port/ws for an http:// base URL. */
export function wsUrl(baseUrl: string, path = '/ws'): string {
  const url = new URL(path, baseUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}
