/** What every upstream connection is built with (from the `upstream` section of the configuration). */
export interface UpstreamOptions {
  /** Timeout for connecting / receiving response headers. */
  connectTimeoutMs: number;
  /** Backoff bounds between restarts (stdio) or reconnects (network). */
  retryMinMs: number;
  retryMaxMs: number;
  /** Restarts/reconnects before the connection gives up and reports upstreamClosed. */
  maxRestarts: number;
  /** WebSocket upstreams (defaults in ws.upstream.ts): shared ping interval, frame bound, send high-water mark. */
  wsHeartbeatIntervalMs?: number;
  wsMaxFrameBytes?: number;
  wsHighWaterMarkBytes?: number;
}
