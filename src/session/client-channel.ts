import type { ClientTransport } from '../core/transport-kind';

export interface ChannelListener {
  channelDrained(channel: ClientChannel): void;
  channelClosed(channel: ClientChannel): void;
}

/**
 * One live client connection or stream, as a session sees it. Transports implement it;
 * sessions only call these methods and receive the two events through ChannelListener
 * (a back-link instead of per-connection closures).
 */
export interface ClientChannel {
  readonly kind: ClientTransport;
  /** Set by the session on attach; the channel reports drain/close to it. */
  listener: ChannelListener | undefined;
  /**
   * Writes one server→client message. `stream` and `seq` make up its event id.
   * Returns false when the channel is above its high-water mark: the caller should stop
   * feeding it until `channelDrained`.
   */
  send(seq: number, stream: number, raw: string): boolean;
  /**
   * Optional: the message just sent refuses its request for now (overload, retry after
   * `retryAfterMs`). A channel that has written nothing else may answer with its transport's
   * own refusal instead (Streamable HTTP: 429 + Retry-After); others ignore it.
   */
  refusedLast?(retryAfterMs: number): void;
  /** Normal end: everything this channel was opened for has been sent. */
  end(): void;
  /**
   * Abnormal end with a reason the client can read. `code` is an end reason (src/core/end-reason.ts:
   * `EndReason`, or `StreamEnd` for what HTTP says before a stream opens); the close code, error
   * event or HTTP status it becomes is the transport's one mapping.
   */
  close(code: number, reason: string): void;
  readonly closed: boolean;
  /** Bytes written but not yet taken by the network: what a slow reader costs in memory. */
  readonly bufferedBytes: number;
}
