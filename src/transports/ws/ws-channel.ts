import type { Duplex } from 'node:stream';
import { WebSocket, type RawData } from 'ws';
import type { ChannelListener, ClientChannel } from '../../session/client-channel';
import type { Session } from '../../session/session';
import { closeReason, toCloseCode } from './ws-close-codes';

/**
 * How a WebSocket client learns sequence numbers (the resume position).
 *
 * Every server→client frame is one JSON-RPC message, exactly the bytes the upstream sent:
 * the official SDK client parses each frame with a strict schema, so nothing may be added
 * to a message. Instead the gateway sends a few notifications of its own, in the
 * `notifications/gateway/` namespace, which SDK clients ignore (Protocol._onnotification
 * drops methods without a handler) and which never count as messages:
 *
 * - `notifications/gateway/session` `{ sessionId, seq?, resumed }` — first frame of every
 *   connection (the same id is in the 101's `Mcp-Session-Id` header, which browsers and
 *   the SDK client cannot read). `seq` is the position the connection starts from: the
 *   next message frame is `seq + 1`. It is absent when the gateway cannot know what the
 *   client has (a resume without Last-Event-ID); a position notification then precedes
 *   the first message.
 * - `notifications/gateway/position` `{ seq }` — sent only when the next message is not
 *   the previous one + 1 (a re-sent answer to a duplicate request); the next message
 *   frame is `seq + 1`.
 *
 * A client keeps the highest number it has counted and, when it reconnects, names it in
 * `Last-Event-ID` (or `?lastEventId=`), with the session id in `Mcp-Session-Id` (or
 * `?sessionId=`); it receives exactly what came after. It may send
 * `notifications/gateway/ack` `{ seq }` so the session can drop what it has already.
 *
 * SEP-1288 (draft WebSocket transport) has no resume position: it re-attaches a session by
 * putting `mcpSessionId` into the JSON-RPC messages, which the SDK client rejects; hence
 * notifications instead of a field. See ws-upgrade.ts and ws-server.ts for the other choices.
 */
export const GatewayMethod = {
  Session: 'notifications/gateway/session',
  Position: 'notifications/gateway/position',
  Ack: 'notifications/gateway/ack',
} as const;

/** Position of a connection whose client has not been told where it stands. */
const UNKNOWN_POSITION = -1;

/** The `ws` WebSocket with a back-link to its channel, so event handlers can be module-level functions. */
export class GatewaySocket extends WebSocket {
  channel: WsChannel | undefined = undefined;
}

/** What a channel reports to the server that owns it (a back-link, not closures). */
export interface WsChannelOwner {
  /** One complete frame from the client. */
  frameIn(channel: WsChannel, data: Buffer, isBinary: boolean): void;
  /** The connection is gone; `byPeer` is true when the client started the close. */
  channelGone(channel: WsChannel, code: number, byPeer: boolean): void;
  /** An error on the connection (oversize frame, bad UTF-8, protocol violation, reset). */
  connectionError(channel: WsChannel, err: Error): void;
}

/**
 * One WebSocket connection as a session sees it. `send` writes a text frame and reports
 * backpressure from `bufferedAmount`; `ws` has no drain event, so the first time a
 * connection backs up a 'drain' listener is put on its TCP socket (and the shared
 * heartbeat re-checks, for data still queued inside ws's compressor).
 */
export class WsChannel implements ClientChannel {
  readonly kind = 'ws' as const;
  listener: ChannelListener | undefined = undefined;
  /** Set as soon as the gateway decides to close (before the close handshake ends). */
  closed = false;
  /** The session this connection carries; set once admitted. */
  session: Session | undefined = undefined;
  /** Something (a pong, a frame) arrived since the last heartbeat tick. */
  alive = true;
  /** The client's address, for an anonymous client's rate limit (set once admitted). */
  address: string | undefined = undefined;
  /** Seq of the last message frame sent: the client's position. */
  private lastSeq = UNKNOWN_POSITION;
  private waitingDrain = false;
  private drainArmed = false;
  /** Bound once, the first time this connection backs up (most never do). */
  private drainHandler: (() => void) | undefined = undefined;
  private readonly lowWater: number;

  constructor(
    readonly ws: GatewaySocket,
    /** The upgraded TCP/TLS socket: the only place a write-side 'drain' comes from. */
    readonly socket: Duplex,
    readonly owner: WsChannelOwner,
    private readonly highWater: number,
  ) {
    this.lowWater = Math.floor(highWater / 2);
    ws.channel = this;
    ws.on('message', wsOnMessage);
    ws.on('close', wsOnClose);
    ws.on('pong', wsOnPong);
    ws.on('error', wsOnError);
  }

  /** First frame of the connection: names the session and the position the client is at. */
  hello(sessionId: string, seq: number | undefined, resumed: boolean): void {
    const params = seq === undefined ? { sessionId, resumed } : { sessionId, seq, resumed };
    this.ws.send(JSON.stringify({ jsonrpc: '2.0', method: GatewayMethod.Session, params }));
    this.lastSeq = seq ?? UNKNOWN_POSITION;
  }

  send(seq: number, _stream: number, raw: string): boolean {
    if (this.closed) return false;
    const ws = this.ws;
    if (seq !== this.lastSeq + 1) {
      ws.send(`{"jsonrpc":"2.0","method":"${GatewayMethod.Position}","params":{"seq":${seq - 1}}}`);
    }
    this.lastSeq = seq;
    ws.send(raw);
    if (ws.bufferedAmount <= this.highWater) return true;
    this.waitForDrain();
    return false;
  }

  /** Bytes written but not yet handed to the kernel (frames queued in ws + the socket's buffer). */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  get position(): number {
    return this.lastSeq;
  }

  end(): void {
    this.close(1000, 'done');
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.ws.close(toCloseCode(code), closeReason(reason));
  }

  /** Drops the connection without a close handshake (dead peer). */
  terminate(): void {
    this.closed = true;
    this.ws.terminate();
  }

  /** Heartbeat tick: a peer that did not answer the previous ping is dropped. Returns false then. */
  heartbeat(): boolean {
    if (!this.alive) {
      this.terminate();
      return false;
    }
    this.alive = false;
    this.ws.ping();
    if (this.waitingDrain) this.checkDrain();
    return true;
  }

  /** Reports drain to the session once the buffer is back under the low-water mark. */
  checkDrain(): void {
    if (!this.waitingDrain || this.closed) return;
    if (this.ws.bufferedAmount > this.lowWater) {
      this.armDrain();
      return;
    }
    this.waitingDrain = false;
    this.listener?.channelDrained(this);
  }

  private waitForDrain(): void {
    if (this.waitingDrain) return;
    this.waitingDrain = true;
    this.armDrain();
  }

  private armDrain(): void {
    // With compression, bytes may sit in ws's queue and the socket never needs a drain: the heartbeat re-checks.
    if (this.drainArmed || !this.socket.writableNeedDrain) return;
    this.drainArmed = true;
    if (this.drainHandler === undefined) this.drainHandler = socketOnDrain.bind(this);
    this.socket.once('drain', this.drainHandler);
  }

  /** Called by the 'drain' handler. */
  drained(): void {
    this.drainArmed = false;
    this.checkDrain();
  }
}

// Module-level handlers: `this` is the GatewaySocket; its `channel` is the back-link.

function wsOnMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  const channel = (this as GatewaySocket).channel;
  if (channel === undefined) return;
  channel.owner.frameIn(channel, toBuffer(data), isBinary);
}

function wsOnClose(this: WebSocket, code: number): void {
  const channel = (this as GatewaySocket).channel;
  if (channel === undefined) return;
  (this as GatewaySocket).channel = undefined;
  const byPeer = !channel.closed;
  channel.closed = true;
  // The session first, so the owner sees whether another channel still carries it.
  const listener = channel.listener;
  channel.listener = undefined;
  if (listener) listener.channelClosed(channel);
  channel.owner.channelGone(channel, code, byPeer);
}

function wsOnPong(this: WebSocket): void {
  const channel = (this as GatewaySocket).channel;
  if (channel !== undefined) channel.alive = true;
}

function wsOnError(this: WebSocket, err: Error): void {
  // ws closes the connection itself (1009 oversize, 1007 bad UTF-8, 1002 protocol error);
  // without this listener the 'error' event would throw and take the process down.
  const channel = (this as GatewaySocket).channel;
  if (channel !== undefined) channel.owner.connectionError(channel, err);
}

function socketOnDrain(this: WsChannel): void {
  this.drained();
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
