import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  JSONRPCMessageSchema,
  type JSONRPCMessage,
  type RequestId,
} from '@modelcontextprotocol/sdk/types.js';
import { WebSocket as WsWebSocket } from 'ws';
import { backoffDelay } from './backoff';
import { ResilientTransportError } from './errors';
import { PendingRequests, isRequestMessage, isResponseMessage } from './pending-requests';
import { SequencedInbox } from './sequence-tracker';
import { SseConnection } from './sse-connection';
import { StreamableConnection } from './streamable-connection';
import {
  ALL_TRANSPORTS,
  TRANSPORT_LABEL,
  type ConnectionContext,
  type ConnectionSink,
  type FetchLike,
  type TransportKind,
  type WebSocketConstructor,
  type WireConnection,
} from './wire';
import { WsConnection } from './ws-connection';

/**
 * Under Node the `ws` package, even where Node has a global WebSocket (22 and later, undici's): that one
 * ignores the third argument, so the upgrade would go out without `headers` (Authorization, an API key)
 * and a gateway with authentication would refuse it, on 22+ only. Elsewhere (a browser, where `ws` is a
 * stub that throws) the global.
 */
function defaultWebSocket(): WebSocketConstructor {
  const underNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  return underNode || global === undefined ? (WsWebSocket as unknown as WebSocketConstructor) : global;
}

/** Header the gateway reads the client id from (until authentication replaces it). */
export const DEFAULT_CLIENT_ID_HEADER = 'x-mcp-client-id';

export interface ReconnectOptions {
  /** Delay before the first reconnect attempt, before jitter (ms). Default 100. */
  minDelayMs?: number;
  /** Largest delay between attempts, before jitter (ms). Default 2000. */
  maxDelayMs?: number;
  /** Growth of the delay per attempt. Default 2. */
  factor?: number;
  /** Random share of each delay, 0…1. Default 0.5. */
  jitter?: number;
  /** Attempts per outage before giving up. Default 20. */
  maxAttempts?: number;
  /** Time per outage after which the client gives up (ms). Default 60 000. */
  giveUpAfterMs?: number;
}

export interface ResilientClientTransportOptions {
  /** Base URL of the gateway, e.g. `http://127.0.0.1:3000` (paths /ws, /mcp, /sse are appended). */
  url: string | URL;
  /** Upstream service (`/ws/<service>` …); the gateway's default service when absent. */
  service?: string;
  /** Transports in order of preference. Default WebSocket → Streamable HTTP → legacy SSE. */
  transports?: TransportKind[];
  /** Client id sent on every request and upgrade (the gateway's rate limits and sessions are per client). */
  clientId?: string;
  /** Header that carries the client id. Default `x-mcp-client-id`. */
  clientIdHeader?: string;
  /** Extra headers on every HTTP request and WebSocket upgrade (e.g. an API key). */
  headers?: Record<string, string>;
  /** Backoff and give-up policy for reconnects. */
  reconnect?: ReconnectOptions;
  /** Time allowed for one connection attempt to be usable (ms). Default 3000. */
  connectTimeoutMs?: number;
  /**
   * How long a message that arrived ahead of a gap in the sequence waits for the gap to fill
   * (ms). Gaps only occur on Streamable HTTP, whose messages travel on several HTTP responses
   * at once; WebSocket and SSE deliver in order. Default 150.
   */
  reorderWindowMs?: number;
  /** WebSocket: acknowledge the position every this many messages so the gateway can free its outbox. Default 64. */
  ackEvery?: number;
  /**
   * WebSocket implementation. Default: the `ws` package under Node, `globalThis.WebSocket` elsewhere (a
   * browser). A constructor that ignores the third argument (the browser's, or Node 22+'s global) cannot
   * send `headers` on the upgrade; the client id and the resume position also go in the query string.
   */
  WebSocket?: WebSocketConstructor;
  /** fetch implementation. Default `globalThis.fetch`. */
  fetch?: FetchLike;
  /** End the gateway session on close() (WebSocket close 1000, HTTP DELETE). Default true. */
  endSessionOnClose?: boolean;
  onreconnect?: (event: ReconnectEvent) => void;
  onfailover?: (event: FailoverEvent) => void;
  ondisconnect?: (event: DisconnectEvent) => void;
}

/** A connection came back and the session resumed. */
export interface ReconnectEvent {
  transport: TransportKind;
  previousTransport: TransportKind;
  /** From noticing the loss to the new connection being usable (ms). */
  durationMs: number;
  attempts: number;
  sessionId: string | undefined;
  /** The position resumed from: every message up to it had been delivered. */
  resumedFrom: number;
}

/** The session moved to another transport. */
export interface FailoverEvent {
  from: TransportKind;
  to: TransportKind;
  /** What made the client leave `from`. */
  error: ResilientTransportError;
}

export interface DisconnectEvent {
  transport: TransportKind;
  error: ResilientTransportError;
}

/** Counters for observability (and for tests that must prove a failover really replayed something). */
export interface ResilientTransportStats {
  /** Server→client messages received from the wire, repeats included. */
  received: number;
  /** Repeats dropped: a sequence number already delivered, or an answer nothing waited for. */
  duplicates: number;
  /** Messages that arrived ahead of a gap and waited in the reorder window. */
  reordered: number;
  /** Requests written again after a reconnect. */
  resent: number;
  /** Successful reconnects. */
  reconnects: number;
  /** Reconnect attempts that failed. */
  failedAttempts: number;
}

type State = 'new' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/**
 * An MCP client transport for the official SDK `Client` that survives connection loss
 * against the gateway: it connects with the first transport that works, and when the
 * connection drops it reconnects with jittered backoff, resumes the same session from the
 * last message it delivered (same transport first, then the next ones), re-sends requests
 * that have no answer, and never delivers a message twice.
 *
 * ```ts
 * const transport = new ResilientClientTransport({ url: 'http://127.0.0.1:3000', clientId: 'me' });
 * await new Client({ name: 'app', version: '1.0.0' }).connect(transport);
 * ```
 *
 * Exactly-once delivery rests on two numbers: the session sequence number of each
 * server→client message (de-duplicated here, and named when resuming so the gateway
 * replays what came after), and the JSON-RPC id of each request (the gateway de-duplicates
 * re-sent requests; here a response is delivered only while its request is pending).
 */
export class ResilientClientTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T) => void;
  onreconnect?: (event: ReconnectEvent) => void;
  onfailover?: (event: FailoverEvent) => void;
  ondisconnect?: (event: DisconnectEvent) => void;

  private readonly baseUrl: URL;
  private readonly order: TransportKind[];
  private readonly headers: Record<string, string>;
  private readonly reconnectPolicy: Required<ReconnectOptions>;
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly fetchImpl: FetchLike;
  private state: State = 'new';
  private conn: WireConnection | undefined = undefined;
  private kind: TransportKind | undefined = undefined;
  private session: string | undefined = undefined;
  /** The SDK may see the session id only once initialize is answered (it skips initialize otherwise). */
  private initialized = false;
  private protocolVersion: string | undefined = undefined;
  private readonly pending = new PendingRequests();
  /** Messages that waited for a connection, in the order the SDK sent them. */
  private readonly queue: JSONRPCMessage[] = [];
  private flushing = false;
  private readonly inbox: SequencedInbox<unknown>;
  private sinceAck = 0;
  private forcedNext: TransportKind | undefined = undefined;
  /** Cancels the backoff sleep when the transport closes. */
  private wake: (() => void) | undefined = undefined;
  private readonly sdkQueue: JSONRPCMessage[] = [];
  private notifiedThisTurn = false;
  private turnTimer: ReturnType<typeof setImmediate> | undefined = undefined;
  private readonly sink: ConnectionSink;
  private readonly counters: ResilientTransportStats = {
    received: 0,
    duplicates: 0,
    reordered: 0,
    resent: 0,
    reconnects: 0,
    failedAttempts: 0,
  };

  constructor(private readonly options: ResilientClientTransportOptions) {
    this.baseUrl = new URL(options.url);
    this.order = options.transports?.length ? [...new Set(options.transports)] : [...ALL_TRANSPORTS];
    this.headers = { ...options.headers };
    if (options.clientId !== undefined) {
      this.headers[(options.clientIdHeader ?? DEFAULT_CLIENT_ID_HEADER).toLowerCase()] = options.clientId;
    }
    const r = options.reconnect ?? {};
    this.reconnectPolicy = {
      minDelayMs: r.minDelayMs ?? 100,
      maxDelayMs: r.maxDelayMs ?? 2000,
      factor: r.factor ?? 2,
      jitter: r.jitter ?? 0.5,
      maxAttempts: r.maxAttempts ?? 20,
      giveUpAfterMs: r.giveUpAfterMs ?? 60_000,
    };
    this.WebSocketImpl = options.WebSocket ?? defaultWebSocket();
    this.fetchImpl = options.fetch ?? ((url, init) => globalThis.fetch(url, init));
    this.onreconnect = options.onreconnect;
    this.onfailover = options.onfailover;
    this.ondisconnect = options.ondisconnect;
    this.inbox = new SequencedInbox<unknown>((value, seq) => this.deliver(value, seq), {
      holdMs: options.reorderWindowMs ?? 150,
    });
    this.sink = {
      message: (conn, value, seq) => this.wireMessage(conn, value, seq),
      session: (_conn, id) => this.sessionNamed(id),
      confirmed: (_conn, id, stream) => this.pending.markConfirmed(id, stream),
      streamEnded: (conn, stream) => this.streamEnded(conn, stream),
      warning: (_conn, err) => this.onerror?.(err),
      lost: (conn, err) => this.connectionLost(conn, err),
    };
  }

  // ------------------------------------------------------------------ Transport API

  get sessionId(): string | undefined {
    return this.initialized ? this.session : undefined;
  }

  /** The transport currently (or last) carrying the session. */
  get transport(): TransportKind | undefined {
    return this.kind;
  }

  /** The resume position: every message up to this sequence number has been delivered. */
  get position(): number {
    return this.inbox.watermark;
  }

  get stats(): Readonly<ResilientTransportStats> {
    return { ...this.counters };
  }

  get connected(): boolean {
    return this.state === 'open' && this.conn !== undefined;
  }

  setProtocolVersion(version: string): void {
    this.protocolVersion = version;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('ResilientClientTransport already started');
    this.state = 'connecting';
    let conn: WireConnection;
    try {
      ({ conn } = await this.connectLoop(undefined, undefined));
    } catch (err) {
      this.state = 'closed';
      this.inbox.dispose();
      throw err;
    }
    await this.flush(conn);
  }

  async send(message: JSONRPCMessage, _options?: TransportSendOptions): Promise<void> {
    if (this.state === 'closed') throw new Error('ResilientClientTransport is closed');
    if (isRequestMessage(message)) this.pending.add(message);
    else if ((message as { method?: string }).method === 'notifications/cancelled') {
      // The SDK gave up on that request (timeout, abort): it must not be re-sent after a failover.
      const requestId = (message as { params?: { requestId?: RequestId } }).params?.requestId;
      if (requestId !== undefined) this.pending.forget(requestId);
    }
    const conn = this.conn;
    if (conn === undefined || this.state !== 'open' || this.flushing || this.queue.length > 0) {
      // Keep the SDK's order: while reconnecting or flushing, everything goes behind what waits.
      this.queue.push(message);
      return;
    }
    await this.write(conn, message);
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    const conn = this.conn;
    this.conn = undefined;
    this.shutdown();
    await conn?.close(this.options.endSessionOnClose ?? true);
    this.onclose?.();
  }

  /**
   * Test hook: destroys the current connection's sockets from the client side, as a network
   * failure would. `next` forces the transport of the first reconnect attempt.
   */
  dropConnectionForTest(next?: TransportKind): void {
    if (next !== undefined) this.forcedNext = next;
    this.conn?.drop();
  }

  // ------------------------------------------------------------------ connecting

  /**
   * Tries transports until one connects or the policy says stop. `lostFrom` is the transport
   * that just failed (undefined for the first connect): it is tried first, then the others
   * in order. Transports whose switch the gateway refused are skipped for this outage.
   */
  private async connectLoop(
    lostFrom: TransportKind | undefined,
    cause: ResilientTransportError | undefined,
  ): Promise<{ conn: WireConnection; kind: TransportKind; attempts: number }> {
    const policy = this.reconnectPolicy;
    const startedAt = Date.now();
    const refused = new Map<TransportKind, ResilientTransportError>();
    let lastError = cause;
    let kind: TransportKind | undefined;
    for (let attempt = 1; ; attempt++) {
      kind = this.nextKind(attempt, kind, lostFrom, refused);
      // The very first connect goes at once; every other attempt waits its backoff.
      if (lostFrom !== undefined || attempt > 1) await this.sleep(backoffDelay(attempt, policy));
      if (this.state === 'closed') throw new ResilientTransportError('connection-lost', 'transport closed');
      const elapsed = Date.now() - startedAt;
      if (attempt > policy.maxAttempts || elapsed > policy.giveUpAfterMs) {
        throw this.giveUp(attempt - 1, elapsed, lastError, refused);
      }
      try {
        const conn = await this.attempt(kind);
        return { conn, kind, attempts: attempt };
      } catch (err) {
        const error =
          err instanceof ResilientTransportError
            ? err
            : new ResilientTransportError('connect-failed', String((err as Error)?.message ?? err), {
                transport: kind,
                cause: err,
              });
        if (error.permanent) throw error;
        this.counters.failedAttempts++;
        if (error.reason === 'switch-refused') refused.set(kind, error);
        lastError = error;
      }
    }
  }

  private nextKind(
    attempt: number,
    previous: TransportKind | undefined,
    lostFrom: TransportKind | undefined,
    refused: Map<TransportKind, ResilientTransportError>,
  ): TransportKind {
    if (attempt === 1) {
      const forced = this.forcedNext;
      this.forcedNext = undefined;
      return forced ?? lostFrom ?? this.order[0];
    }
    const start = previous === undefined ? -1 : this.order.indexOf(previous);
    for (let i = 1; i <= this.order.length; i++) {
      const candidate = this.order[(start + i + this.order.length) % this.order.length];
      if (!refused.has(candidate)) return candidate;
    }
    // Every transport refused the switch: only staying where the session is can work.
    return lostFrom ?? this.order[0];
  }

  private giveUp(
    attempts: number,
    elapsedMs: number,
    lastError: ResilientTransportError | undefined,
    refused: Map<TransportKind, ResilientTransportError>,
  ): ResilientTransportError {
    const over = `gave up after ${attempts} attempt${attempts === 1 ? '' : 's'} over ${(elapsedMs / 1000).toFixed(1)} s`;
    if (refused.size > 0) {
      const names = [...refused.keys()].map((k) => TRANSPORT_LABEL[k]).join(', ');
      const first = refused.values().next().value as ResilientTransportError;
      return new ResilientTransportError(
        'switch-refused',
        `The gateway refused the switch to ${names} (${first.message}) and no other transport worked; ${over}` +
          (lastError && lastError !== first ? `; last error: ${lastError.message}` : ''),
        {
          permanent: true,
          attempts,
          elapsedMs,
          cause: lastError,
          rpcCode: first.rpcCode,
          transport: first.transport,
        },
      );
    }
    return new ResilientTransportError(
      'gave-up',
      `Could not reach the gateway: ${over}${lastError ? `; last error: ${lastError.message}` : ''}`,
      { attempts, elapsedMs, cause: lastError, transport: lastError?.transport },
    );
  }

  /** One connection attempt on `kind`, resuming the session when there is one. */
  private async attempt(kind: TransportKind): Promise<WireConnection> {
    const ctx: ConnectionContext = {
      baseUrl: this.baseUrl,
      service: this.options.service,
      headers: this.headers,
      clientId: this.options.clientId,
      fetch: this.fetchImpl,
      WebSocket: this.WebSocketImpl,
      connectTimeoutMs: this.options.connectTimeoutMs ?? 3000,
      sessionId: this.session,
      afterSeq: this.inbox.watermark,
      protocolVersion: this.protocolVersion,
      streams: kind === 'streamable' ? this.pending.openStreams() : [],
    };
    const conn =
      kind === 'ws'
        ? new WsConnection(ctx, this.sink)
        : kind === 'streamable'
          ? new StreamableConnection(ctx, this.sink)
          : new SseConnection(ctx, this.sink);
    // Current before open() resolves: a loss reported right after it must find it current.
    this.conn = conn;
    try {
      await conn.open();
    } catch (err) {
      if (this.conn === conn) this.conn = undefined;
      throw err;
    }
    if (this.state === 'closed') {
      await conn.close(false);
      throw new ResilientTransportError('connection-lost', 'transport closed');
    }
    this.kind = kind;
    this.state = 'open';
    this.sinceAck = 0;
    return conn;
  }

  private connectionLost(conn: WireConnection, error: ResilientTransportError): void {
    if (conn !== this.conn || this.state === 'closed') return;
    this.conn = undefined;
    this.state = 'reconnecting';
    const lostAt = Date.now();
    this.ondisconnect?.({ transport: conn.kind, error });
    if (error.permanent) {
      this.fail(error);
      return;
    }
    void this.recover(conn.kind, error, lostAt);
  }

  private async recover(from: TransportKind, error: ResilientTransportError, lostAt: number): Promise<void> {
    const resumedFrom = this.inbox.watermark;
    let result: { conn: WireConnection; kind: TransportKind; attempts: number };
    try {
      result = await this.connectLoop(from, error);
    } catch (err) {
      if (this.state !== 'closed') this.fail(err as Error);
      return;
    }
    const { conn, kind, attempts } = result;
    this.counters.reconnects++;
    if (kind !== from) this.onfailover?.({ from, to: kind, error });
    this.onreconnect?.({
      transport: kind,
      previousTransport: from,
      durationMs: Date.now() - lostAt,
      attempts,
      sessionId: this.session,
      resumedFrom,
    });
    await this.flush(conn);
  }

  /** After (re)connecting: re-sends requests the gateway may not have, then what waited. */
  private async flush(conn: WireConnection): Promise<void> {
    this.flushing = true;
    try {
      for (const request of this.pending.unconfirmed()) {
        if (conn !== this.conn) return;
        this.pending.markSent(request.id);
        this.counters.resent++;
        if (!(await conn.send(request.message))) return;
      }
      while (this.queue.length > 0 && conn === this.conn) {
        await this.write(conn, this.queue.shift() as JSONRPCMessage);
      }
    } finally {
      this.flushing = false;
    }
  }

  private async write(conn: WireConnection, message: JSONRPCMessage): Promise<void> {
    const request = isRequestMessage(message);
    if (request) this.pending.markSent(message.id);
    const written = await conn.send(message);
    // A request is re-sent from `pending` after the reconnect; anything else waits in the queue.
    if (!written && !request && this.state !== 'closed') this.queue.unshift(message);
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.state === 'closed') return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }

  /** Permanent failure: report why, then close. */
  private fail(failure: Error): void {
    if (this.state === 'closed') return;
    const error = this.explain(failure);
    this.state = 'closed';
    const conn = this.conn;
    this.conn = undefined;
    // Messages already received are still valid: hand them over before saying goodbye.
    this.inbox.release();
    this.shutdown();
    void conn?.close(false);
    this.onerror?.(error);
    this.onclose?.();
  }

  /** Leads a permanent error with what it means for the caller; the wire detail follows in brackets. */
  private explain(error: Error): Error {
    if (!(error instanceof ResilientTransportError)) return error;
    const session = this.session === undefined ? 'The session' : `Session ${this.session}`;
    let lead: string | undefined;
    switch (error.reason) {
      case 'session-expired':
        lead = `${session} expired or was ended on the gateway; a new session (a new Client.connect) is needed`;
        break;
      case 'session-moved':
        lead = `${session} was taken over by another connection`;
        break;
      case 'resume-unavailable':
        lead = `${session} cannot be resumed without losing messages: the gateway no longer holds what came after position ${this.inbox.watermark}`;
        break;
      case 'rejected':
        lead = 'The gateway refused this client';
        break;
      default:
        return error; // switch-refused and gave-up messages already say it all
    }
    return new ResilientTransportError(error.reason, `${lead} (${error.message})`, {
      transport: error.transport,
      status: error.status,
      closeCode: error.closeCode,
      rpcCode: error.rpcCode,
      cause: error,
    });
  }

  private shutdown(): void {
    this.wake?.();
    this.inbox.dispose();
    this.queue.length = 0;
    this.sdkQueue.length = 0;
    if (this.turnTimer !== undefined) clearImmediate(this.turnTimer);
    this.turnTimer = undefined;
  }

  // ------------------------------------------------------------------ receiving

  private sessionNamed(id: string): void {
    if (this.session === undefined) {
      this.session = id;
      return;
    }
    if (id !== this.session) {
      this.onerror?.(new Error(`gateway named session ${id}, expected ${this.session}`));
    }
  }

  private wireMessage(conn: WireConnection, value: unknown, seq: number | undefined): void {
    if (this.state === 'closed') return;
    // Messages from a connection already replaced are still genuine; the inbox drops repeats.
    this.counters.received++;
    const verdict = this.inbox.push(seq, value);
    if (verdict === 'duplicate') this.counters.duplicates++;
    else if (verdict === 'held') this.counters.reordered++;
    const every = this.options.ackEvery ?? 64;
    if (conn === this.conn && conn.ack && ++this.sinceAck >= every) {
      this.sinceAck = 0;
      conn.ack(this.inbox.watermark);
    }
  }

  /** Called by the inbox, at most once per sequence number, in order. */
  private deliver(value: unknown, seq: number | undefined): void {
    if (this.state === 'closed') return;
    const parsed = JSONRPCMessageSchema.safeParse(value);
    if (!parsed.success) {
      const error = (value as { error?: { message?: unknown } })?.error;
      this.onerror?.(
        new Error(
          error && typeof error.message === 'string'
            ? `gateway error: ${error.message}`
            : `dropped a message that is not valid JSON-RPC${seq === undefined ? '' : ` (seq ${seq})`}`,
        ),
      );
      return;
    }
    const message = parsed.data;
    if (isResponseMessage(message) && message.id !== undefined) {
      const request = this.pending.settle(message.id);
      // Nothing waits for it: the same answer was delivered already (replayed after a failover).
      if (request === undefined) {
        this.counters.duplicates++;
        return;
      }
      if (request.message.method === 'initialize' && 'result' in message) this.initialized = true;
    }
    this.sdkQueue.push(message);
    this.drainToSdk();
  }

  /**
   * Hands messages to the SDK in order. The SDK runs notification handlers in a microtask but
   * settles responses synchronously, so a response handed over in the same turn as the
   * progress notifications before it would be settled first and those notifications dropped
   * ("unknown progress token"). A response that follows notifications therefore waits for
   * the next macrotask.
   */
  private drainToSdk(): void {
    while (this.sdkQueue.length > 0 && this.state !== 'closed') {
      const message = this.sdkQueue[0];
      const response = isResponseMessage(message);
      if (response && this.notifiedThisTurn) {
        this.armTurn();
        return;
      }
      this.sdkQueue.shift();
      if (!response) {
        this.notifiedThisTurn = true;
        this.armTurn();
      }
      this.onmessage?.(message);
    }
  }

  private armTurn(): void {
    if (this.turnTimer !== undefined) return;
    this.turnTimer = setImmediate(() => {
      this.turnTimer = undefined;
      this.notifiedThisTurn = false;
      this.drainToSdk();
    });
  }

  /** A Streamable HTTP stream ended: any request still waiting on it lost its answer on the way. */
  private streamEnded(conn: WireConnection, stream: number): void {
    // Its last messages may still sit in the reorder window; look once that has passed.
    const timer = setTimeout(
      () => {
        if (conn !== this.conn || this.state !== 'open') return;
        const orphans = this.pending.all().filter((p) => p.state === 'confirmed' && p.stream === stream);
        if (orphans.length === 0) return;
        // Re-send them after reconnecting: the gateway moves them to the new stream or replays their answer.
        for (const p of orphans) p.state = 'sent';
        conn.drop();
      },
      (this.options.reorderWindowMs ?? 150) + 20,
    );
    timer.unref?.();
  }
}
