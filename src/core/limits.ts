/** Limits the configuration declares and the layers below it enforce (plain types, no behaviour). */

/** The caps and rates against connection and session floods; 0 turns one off. */
export interface FloodLimits {
  /** Live TCP (or TLS) connections, all clients together. */
  maxConnections: number;
  /** Live connections from one address. */
  maxConnectionsPerIp: number;
  /** New connections per second from one address (token bucket) and the burst it may take at once. */
  connectRatePerIp: number;
  connectBurstPerIp: number;
  /** New sessions per second from one address (token bucket) and its burst. */
  sessionRatePerIp: number;
  sessionBurstPerIp: number;
  /** Live sessions of one client id. */
  maxSessionsPerClient: number;
  /** A WebSocket or legacy SSE connection must send `initialize` within this long. */
  initDeadlineMs: number;
}
