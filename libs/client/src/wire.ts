import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { ResilientTransportError } from './errors';
import type { TransportKind } from './transport-kind';

export { ALL_TRANSPORTS, TRANSPORT_LABEL, type TransportKind } from './transport-kind';

/** The subset of the WHATWG / `ws` WebSocket API the client uses. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** `ws` only: destroys the socket without a close handshake (what a network failure looks like). */
  terminate?(): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: { message?: string; error?: unknown }) => void) | null;
}

/**
 * A WebSocket constructor: the browser/undici global, or the `ws` package (whose third
 * argument carries request headers; the global one ignores it, so the resume position also
 * goes into the query string).
 */
export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
  options?: { headers?: Record<string, string> },
) => WebSocketLike;

export type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

/** What one connection attempt needs to know. Built fresh for every attempt. */
export interface ConnectionContext {
  baseUrl: URL;
  service: string | undefined;
  /** Extra headers on every HTTP request and the WebSocket upgrade (client id, API key …). */
  headers: Record<string, string>;
  /** Client id, also sent as `client_id` query parameter where headers cannot be (browser WebSocket). */
  clientId: string | undefined;
  fetch: FetchLike;
  WebSocket: WebSocketConstructor;
  connectTimeoutMs: number;
  /** The session to resume; undefined to start a new one. */
  sessionId: string | undefined;
  /** Resume position: every message up to this sequence number has been delivered. */
  afterSeq: number;
  /** Negotiated MCP protocol version, once known (Streamable HTTP sends it as a header). */
  protocolVersion: string | undefined;
  /** Streamable HTTP: POST streams that still owe answers, to be resumed with GET + Last-Event-ID. */
  streams: number[];
}

/** What a connection reports to the transport that owns it. */
export interface ConnectionSink {
  /** A server→client message; `seq` is its session sequence number when the wire carried one. */
  message(conn: WireConnection, message: unknown, seq: number | undefined): void;
  /** The session id, as soon as the gateway names it. */
  session(conn: WireConnection, sessionId: string): void;
  /** The gateway acknowledged a request; `stream` is where its answer will be written (Streamable HTTP). */
  confirmed(conn: WireConnection, id: RequestId, stream: number | undefined): void;
  /** A Streamable HTTP response stream ended normally. */
  streamEnded(conn: WireConnection, stream: number): void;
  /** A non-fatal problem worth reporting (a message the gateway refused, a malformed frame). */
  warning(conn: WireConnection, error: Error): void;
  /** The connection is gone. Called at most once per connection, and only after open() resolved. */
  lost(conn: WireConnection, error: ResilientTransportError): void;
}

/** One live connection over one wire protocol. A new object per connection attempt. */
export interface WireConnection {
  readonly kind: TransportKind;
  /**
   * Connects (and resumes, when the context names a session). Resolves once messages can be
   * sent; rejects with a ResilientTransportError that says whether to retry.
   */
  open(): Promise<void>;
  /**
   * Writes one message. Resolves true once written (for HTTP: once the gateway answered the
   * POST), false when the connection failed before that (then `lost` has been reported).
   */
  send(message: JSONRPCMessage): Promise<boolean>;
  /** Tells the gateway everything up to `seq` has been delivered, where the wire has a way to (WebSocket). */
  ack?(seq: number): void;
  /** Orderly close; `endSession` also ends the gateway session (WebSocket 1000, HTTP DELETE). */
  close(endSession: boolean): Promise<void>;
  /** Destroys the underlying sockets at once, as a network failure would (tests). */
  drop(): void;
}
