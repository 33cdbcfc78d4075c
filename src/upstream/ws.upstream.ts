import { Logger } from '@nestjs/common';
import WebSocket, { type RawData } from 'ws';
import { isRequest, type JsonRpcMessage, type JsonRpcRequest } from '../../libs/protocol/src';
import type { ReplicaConfig } from '../config/gateway-config';
import { HeldQueue } from '../core/held-queue';
import { answerNotSent, answerUnavailable, InFlightRequests, takeIncoming } from './in-flight-requests';
import type { UpstreamOptions } from './upstream-options';
import type { MessageHeaders, UpstreamConnection, UpstreamSink } from './upstream-connection';
import { backoffDelay, describeError, HandshakeStep, UpstreamHandshake } from './upstream-handshake';
import { parseUpstreamText } from './upstream-message';

type WsReplica = Extract<ReplicaConfig, { transport: 'ws' }>;

/** The subprotocol MCP over WebSocket uses (the SDK's WebSocketClientTransport asks for it too). */
const MCP_SUBPROTOCOL = 'mcp';
/** Messages held while connecting, replaying the handshake, or waiting for the socket to drain. */
const MAX_HELD = 10_000;
/** Bytes held for the same reasons; past either bound a request fails fast instead. */
const MAX_HELD_BYTES = 16 * 1024 * 1024;
const DEFAULT_HEARTBEAT_MS = 30_000;
const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;
const DEFAULT_HIGH_WATER_BYTES = 1024 * 1024;

interface Held {
  message: JsonRpcMessage;
  text: string;
}

/** The WebSocket of one connection attempt, with a back-link so the module handlers need no closure. */
class UpstreamSocket extends WebSocket {
  owner: WsUpstream | undefined = undefined;
  /** A pong (or any frame) came since the last heartbeat tick. */
  alive = true;
  /**
   * Bytes of our messages sent and not yet flushed to the kernel, counted from send()'s callbacks
   * (they fire in write order). Unlike polling bufferedAmount, every write ends in a callback, so
   * a waiting queue can never stall.
   */
  unflushedBytes = 0;
  private readonly sizes: number[] = [];
  private sizesHead = 0;
  /** send()'s callback: one per connection, not per message. */
  readonly written = (err?: Error | null): void => {
    this.unflushedBytes -= this.sizes[this.sizesHead++];
    if (this.sizesHead === this.sizes.length) {
      this.sizes.length = 0;
      this.sizesHead = 0;
    }
    if (!err) this.owner?.socketDrained(this);
  };

  sendCounted(text: string): void {
    this.sizes.push(text.length);
    this.unflushedBytes += text.length;
    this.send(text, this.written);
  }
}

// ---------------------------------------------------------------------------------------------
// One heartbeat timer per interval for all WebSocket upstreams of the process
// ---------------------------------------------------------------------------------------------

class Heartbeat {
  private readonly sockets = new Set<UpstreamSocket>();
  private timer: NodeJS.Timeout | undefined = undefined;

  constructor(private readonly intervalMs: number) {}

  add(socket: UpstreamSocket): void {
    this.sockets.add(socket);
    if (this.timer === undefined) {
      this.timer = setInterval(this.tick, this.intervalMs);
      this.timer.unref();
    }
  }

  delete(socket: UpstreamSocket): void {
    this.sockets.delete(socket);
    if (this.sockets.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private readonly tick = (): void => {
    for (const socket of this.sockets) {
      if (!socket.alive) {
        socket.owner?.heartbeatMissed(socket);
        continue;
      }
      socket.alive = false;
      socket.ping();
    }
  };
}

const heartbeats = new Map<number, Heartbeat>();

function heartbeatFor(intervalMs: number): Heartbeat {
  let h = heartbeats.get(intervalMs);
  if (h === undefined) heartbeats.set(intervalMs, (h = new Heartbeat(intervalMs)));
  return h;
}

// ws calls these with the socket as `this` (always an UpstreamSocket): one function for all connections.
function socketOpen(this: WebSocket): void {
  const socket = this as UpstreamSocket;
  socket.owner?.opened(socket);
}
function socketMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  const socket = this as UpstreamSocket;
  socket.alive = true;
  socket.owner?.received(data, isBinary);
}
function socketPong(this: WebSocket): void {
  (this as UpstreamSocket).alive = true;
}
function socketError(this: WebSocket, err: Error): void {
  const socket = this as UpstreamSocket;
  socket.owner?.socketError(socket, err);
}
function socketClose(this: WebSocket, code: number, reason: Buffer): void {
  const socket = this as UpstreamSocket;
  socket.owner?.socketClosed(socket, code, reason.toString('utf8'));
}

/**
 * An MCP server reached over WebSocket (subprotocol `mcp`, one JSON-RPC message per text frame).
 * A lost connection fails what was in flight, is re-opened with jittered backoff, and the client's
 * recorded handshake is replayed on the new one before anything else is sent. Backpressure both
 * ways: pause() stops reading the socket; sends wait (bounded) while the socket holds more than
 * the high-water mark.
 */
export class WsUpstream implements UpstreamConnection {
  readonly kind = 'ws' as const;
  sink: UpstreamSink | undefined = undefined;

  private readonly logger: Logger;
  private readonly handshake = new UpstreamHandshake();
  private readonly heartbeat: Heartbeat;
  private readonly maxFrameBytes: number;
  private readonly highWaterBytes: number;
  private socket: UpstreamSocket | undefined = undefined;
  /** Open, and any handshake replay finished: client messages may be written. */
  private ready = false;
  private closed = false;
  private paused = false;
  /** A connection was open before: the next one must replay the handshake. */
  private wasOpen = false;
  private attempts = 0;
  private retryTimer: NodeJS.Timeout | undefined = undefined;
  private replayTimer: NodeJS.Timeout | undefined = undefined;
  /** Settles start() with the first connection attempt. */
  private starting: { resolve: () => void; reject: (err: Error) => void } | undefined = undefined;
  private lastError: string | undefined = undefined;
  /** Trace context for the first upgrade request (start()'s caller), then undefined. */
  private connectTrace: MessageHeaders | undefined = undefined;
  /** Requests written to the current connection and not yet answered (failed if it drops). */
  private readonly inFlight = new InFlightRequests();
  /** Sized by the text's length. */
  private readonly held = new HeldQueue<Held>(MAX_HELD, MAX_HELD_BYTES);

  constructor(
    readonly replica: ReplicaConfig,
    private readonly options: UpstreamOptions,
  ) {
    this.logger = new Logger(`WsUpstream ${replica.id ?? (replica as WsReplica).url}`);
    this.heartbeat = heartbeatFor(options.wsHeartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS);
    this.maxFrameBytes = options.wsMaxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.highWaterBytes = options.wsHighWaterMarkBytes ?? DEFAULT_HIGH_WATER_BYTES;
  }

  /** Requests written to the upstream and not yet answered, cancelled or failed. */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Messages waiting to be written (connecting, replaying, or the socket above its high-water mark). */
  get heldCount(): number {
    return this.held.length;
  }

  /** Bytes the current socket has not yet handed to the kernel (ws's own count). */
  get bufferedAmount(): number {
    return this.socket?.bufferedAmount ?? 0;
  }

  /** Opens the first connection; rejects when it cannot be (the pool then tries another replica). */
  start(trace?: MessageHeaders): Promise<void> {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    if (this.socket !== undefined) return Promise.resolve();
    this.connectTrace = trace;
    const started = new Promise<void>((resolve, reject) => (this.starting = { resolve, reject }));
    this.connect();
    return started;
  }

  send(message: JsonRpcMessage, raw: string | undefined): void {
    if (this.closed) {
      this.fail(message, 'Upstream unavailable: connection closed', false);
      return;
    }
    this.handshake.outgoing(message);
    const text = raw ?? JSON.stringify(message);
    if (!this.ready || this.heldCount > 0 || this.socket!.unflushedBytes >= this.highWaterBytes) {
      this.hold(message, text);
      return;
    }
    this.write(message, text);
  }

  pause(): void {
    this.paused = true;
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.pause();
  }

  resume(): void {
    this.paused = false;
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.resume();
  }

  healthy(): boolean {
    return !this.closed && this.ready;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.ready = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.replayTimer) clearTimeout(this.replayTimer);
    this.retryTimer = undefined;
    this.replayTimer = undefined;
    this.held.clear();
    this.inFlight.clear();
    this.starting?.reject(new Error('connection closed'));
    this.starting = undefined;
    const socket = this.socket;
    this.socket = undefined;
    if (socket === undefined) return Promise.resolve();
    this.release(socket);
    if (socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      if (socket.readyState === WebSocket.OPEN) socket.close(1000, 'gateway closing');
      else socket.terminate();
      // A peer that never completes the closing handshake must not hold shutdown up.
      setTimeout(terminateSocket, 1000, socket).unref();
    });
  }

  // ------------------------------------------------------------------------------ connection

  private connect(): void {
    const r = this.replica as WsReplica;
    let socket: UpstreamSocket;
    try {
      // Only the first upgrade was caused by a request; a reconnect belongs to no trace.
      const trace = this.connectTrace;
      this.connectTrace = undefined;
      socket = new UpstreamSocket(r.url, MCP_SUBPROTOCOL, {
        headers: trace ? { ...r.headers, ...trace } : r.headers,
        handshakeTimeout: this.options.connectTimeoutMs,
        maxPayload: this.maxFrameBytes,
        perMessageDeflate: false,
      });
    } catch (err) {
      this.connectFailed(`cannot connect: ${describeError(err)}`);
      return;
    }
    socket.owner = this;
    this.socket = socket;
    this.lastError = undefined;
    socket.on('open', socketOpen);
    socket.on('message', socketMessage);
    socket.on('pong', socketPong);
    socket.on('error', socketError);
    socket.on('close', socketClose);
  }

  /** The upgrade succeeded (called by the socket). */
  opened(socket: UpstreamSocket): void {
    if (socket !== this.socket) return;
    if (socket.protocol !== MCP_SUBPROTOCOL) {
      this.logger.warn(`The upstream did not accept the "${MCP_SUBPROTOCOL}" subprotocol; continuing`);
    }
    this.heartbeat.add(socket);
    if (this.paused) socket.pause();
    const starting = this.starting;
    this.starting = undefined;
    starting?.resolve();
    const init = this.wasOpen ? this.handshake.startReplay() : undefined;
    this.wasOpen = true;
    if (init === undefined) {
      this.becameReady();
      return;
    }
    // The new connection knows nothing: it gets the client's handshake before anything else.
    this.logger.warn('Upstream WebSocket re-opened: replaying the initialize handshake');
    socket.send(JSON.stringify(init));
    this.replayTimer = setTimeout(this.replayTimedOut, this.options.connectTimeoutMs);
  }

  private becameReady(): void {
    this.ready = true;
    this.attempts = 0;
    this.flushHeld();
  }

  private readonly replayTimedOut = (): void => {
    this.replayTimer = undefined;
    this.logger.warn('The upstream did not answer the replayed initialize; reconnecting');
    this.socket?.terminate(); // → socketClosed → next attempt
  };

  private finishReplay(): void {
    if (this.replayTimer) clearTimeout(this.replayTimer);
    this.replayTimer = undefined;
    const initialized = this.handshake.initialized;
    if (initialized) this.socket?.send(JSON.stringify(initialized));
    this.becameReady();
  }

  /** A socket-level error; the 'close' that follows decides what happens next. */
  socketError(socket: UpstreamSocket, err: Error): void {
    if (socket !== this.socket) return;
    this.lastError = describeError(err);
    if (!this.closed) this.logger.debug(`WebSocket error: ${this.lastError}`);
  }

  /** The peer stopped answering pings: the connection is dead even if TCP has not noticed. */
  heartbeatMissed(socket: UpstreamSocket): void {
    this.heartbeat.delete(socket);
    if (socket !== this.socket) return;
    this.lastError = 'no pong within the heartbeat interval';
    this.logger.warn(`Upstream WebSocket: ${this.lastError}; reconnecting`);
    socket.terminate();
  }

  socketClosed(socket: UpstreamSocket, code: number, reason: string): void {
    this.release(socket);
    if (socket !== this.socket || this.closed) return;
    this.socket = undefined;
    this.ready = false;
    if (this.replayTimer) clearTimeout(this.replayTimer);
    this.replayTimer = undefined;
    this.handshake.abortReplay();
    const why = this.lastError ?? `closed with ${code}${reason ? ` (${reason})` : ''}`;
    if (this.starting !== undefined) {
      this.connectFailed(why);
      return;
    }
    this.logger.warn(`Upstream WebSocket lost: ${why}`);
    // Answers to what the old connection carried will never come on the next one.
    this.inFlight.failAll(this.sink, this.handshake, `Upstream unavailable: upstream WebSocket ${why}`);
    this.scheduleReconnect(why);
  }

  private connectFailed(why: string): void {
    const starting = this.starting;
    this.starting = undefined;
    this.socket = undefined;
    if (starting === undefined) {
      this.scheduleReconnect(why);
      return;
    }
    // The first connection failed: start() rejects and the pool can move on to another replica;
    // what was sent meanwhile is answered now rather than left waiting for a retry nobody asked for.
    const message = `Upstream unreachable: ${why}`;
    this.failHeld(message);
    starting.reject(new Error(message));
  }

  private scheduleReconnect(why: string): void {
    if (this.closed) return;
    if (this.attempts >= this.options.maxRestarts) {
      this.giveUp(
        `Upstream unavailable: upstream WebSocket ${why}; gave up after ${this.attempts} reconnects`,
      );
      return;
    }
    const delay = backoffDelay(this.attempts, this.options.retryMinMs, this.options.retryMaxMs);
    this.attempts++;
    this.retryTimer = setTimeout(this.reconnect, delay);
  }

  private readonly reconnect = (): void => {
    this.retryTimer = undefined;
    if (!this.closed) this.connect();
  };

  private giveUp(why: string): void {
    this.logger.error(why);
    this.closed = true;
    this.failHeld(why);
    this.inFlight.failAll(this.sink, this.handshake, why);
    this.sink?.upstreamClosed(new Error(why));
  }

  private failHeld(why: string): void {
    // Held messages were never written to a socket: they may go to another replica.
    for (const h of this.held.drain()) this.fail(h.message, why, false);
  }

  private release(socket: UpstreamSocket): void {
    this.heartbeat.delete(socket);
  }

  // ------------------------------------------------------------------------------ writing

  private hold(message: JsonRpcMessage, text: string): void {
    if (!this.held.fits(text.length)) {
      this.fail(message, 'Upstream unavailable: too many messages waiting for the upstream WebSocket', false);
      return;
    }
    this.held.push({ message, text }, text.length);
  }

  private write(message: JsonRpcMessage, text: string): void {
    if (isRequest(message)) this.inFlight.add(message.id);
    else this.inFlight.forgetCancelled(message);
    this.socket!.sendCounted(text);
  }

  /** Writes held messages while the socket stays under its high-water mark. */
  private flushHeld(): void {
    while (this.held.length > 0 && this.ready) {
      if (this.socket!.unflushedBytes >= this.highWaterBytes) return; // resumed by socketDrained()
      const h = this.held.shift()!;
      this.write(h.message, h.text);
    }
  }

  /** A message was flushed to the kernel (called by the socket): room to send more, maybe. */
  socketDrained(socket: UpstreamSocket): void {
    if (socket === this.socket && this.ready && this.heldCount > 0) this.flushHeld();
  }

  // ------------------------------------------------------------------------------ reading

  /** One frame from the upstream (called by the socket). */
  received(data: RawData, isBinary: boolean): void {
    if (isBinary) {
      // MCP over WebSocket is text frames; a binary one is not protocol.
      this.logger.warn(`Dropped a binary frame from the upstream (${byteLength(data)} bytes)`);
      return;
    }
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : data.toString('utf8');
    const parsed = parseUpstreamText(text);
    if (typeof parsed === 'string') {
      this.logger.warn(`Dropped an upstream message: ${parsed}`);
      return;
    }
    if (Array.isArray(parsed)) for (const m of parsed) this.deliver(m, undefined);
    else this.deliver(parsed, text);
  }

  private deliver(message: JsonRpcMessage, raw: string | undefined): void {
    const step = takeIncoming(message, raw, this.inFlight, this.handshake, this.sink);
    if (step === HandshakeStep.Replayed || step === HandshakeStep.ReplayFailed) {
      if (step === HandshakeStep.ReplayFailed)
        this.logger.warn('The upstream refused the replayed initialize');
      this.finishReplay();
    }
  }

  /** `reached` false: the request was never written to a socket (answerNotSent). */
  private fail(message: JsonRpcMessage, why: string, reached = true): void {
    if (!isRequest(message)) {
      this.logger.warn(`Could not deliver ${(message as JsonRpcRequest).method ?? 'a response'}: ${why}`);
      return;
    }
    if (this.handshake.isInternal(message.id)) return;
    if (reached) answerUnavailable(this.sink, message.id, why);
    else answerNotSent(this.sink, message.id, why);
  }
}

function terminateSocket(socket: WebSocket): void {
  if (socket.readyState !== WebSocket.CLOSED) socket.terminate();
}

function byteLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}
