import type { JsonRpcId, JsonRpcMessage } from '../../libs/protocol/src/jsonrpc';
import type { ReplicaConfig } from '../config/gateway-config';
import type { MessageHeaders, UpstreamTransportKind } from '../core/transport-kind';

export type { MessageHeaders, UpstreamTransportKind } from '../core/transport-kind';

/** Where an upstream connection delivers what it reads. A Session implements it. */
export interface UpstreamSink {
  /**
   * One message from the upstream, untouched. `raw` is its original text when the
   * transport had it (forwarded as is); `related` names the client request it belongs
   * to when the transport can tell (it arrived on that request's HTTP response stream).
   */
  upstreamMessage(message: JsonRpcMessage, raw: string | undefined, related: JsonRpcId | undefined): void;
  /** The connection is gone for good (restarts exhausted, closed by the upstream). */
  upstreamClosed(error: Error | undefined): void;
  /**
   * Request `id` provably never reached the upstream (connect refused, DNS or TLS failure, a
   * process that could not spawn, a WebSocket that was not open, the connection closed before it
   * was written): it cannot have had effects, so the sink may send it to another replica. A sink
   * without it gets an UpstreamUnavailable answer instead (see answerNotSent).
   */
  upstreamNotSent?(id: JsonRpcId, why: string): void;
}

/**
 * One connection to one upstream replica, whatever its transport. Messages are forwarded
 * as raw JSON-RPC both ways; nothing is re-issued through an SDK Client.
 *
 * Contract for implementations:
 * - `send` never throws and may be called before `start` resolves (messages queue until connected).
 *   When a request cannot be delivered, the implementation answers it through the sink with a
 *   JSON-RPC error (code ErrorCode.UpstreamUnavailable) that says why — through `upstreamNotSent`
 *   instead when it provably never reached the upstream (see answerNotSent).
 * - When the upstream loses its state (a stdio child restarted, an HTTP upstream answered 404 for its
 *   session), the implementation re-runs the client's recorded initialize handshake before sending more.
 * - `pause`/`resume` stop and restart reading from the upstream (backpressure from a slow client).
 */
export interface UpstreamConnection {
  readonly kind: UpstreamTransportKind;
  readonly replica: ReplicaConfig;
  sink: UpstreamSink | undefined;
  /**
   * `trace`: `traceparent`/`tracestate` of the request the connection is opened for; a
   * WebSocket upstream sends them with its first upgrade request (the only HTTP request it
   * makes). Other transports carry trace context per message and ignore it.
   */
  start(trace?: MessageHeaders): Promise<void>;
  /**
   * `headers`: extra HTTP headers for this one message (2026-07-28 `Mcp-Param-*` headers the
   * gateway forwards); transports without HTTP requests ignore them.
   */
  send(message: JsonRpcMessage, raw: string | undefined, headers?: MessageHeaders): void;
  pause(): void;
  resume(): void;
  healthy(): boolean;
  close(): Promise<void>;
}

/** A session's hold on an upstream connection (dedicated now; pooled later). */
export interface UpstreamLease {
  readonly connection: UpstreamConnection;
  release(): void;
}
