/**
 * Why a session or one of its streams ends, named once for every layer. The session, the policy
 * and the flood guard end things with one of these codes (`ClientChannel.close(code, reason)`);
 * each transport maps it once to what its clients read: the WebSocket close frame carries
 * {@link toCloseCode}, a Streamable HTTP or legacy SSE stream ends with an `error` event carrying
 * the same close code beside a JSON-RPC code (src/transports/http/sse-channel.ts), and a stream
 * that has not answered yet becomes an HTTP status.
 *
 * The values are the WebSocket close codes clients already know (libs/client reads them): 1000–1015
 * are RFC 6455 / IANA codes; 4000–4999 are private-use codes that MCP leaves free, mirroring HTTP
 * statuses where one exists (4004 ~ 404, 4009 ~ 409). A few ends are said in HTTP terms, as the
 * HTTP transports answer them before a stream is open ({@link StreamEnd}).
 */
export const EndReason = {
  /** Normal end. From the client it also means "end my session" (see WsCloseFromClient). */
  Normal: 1000,
  /** The gateway is shutting down; the session stays resumable (another node, or after restart). */
  GoingAway: 1001,
  /** The peer broke the WebSocket protocol (ws closes with it by itself). */
  ProtocolError: 1002,
  /** A text frame was not valid UTF-8 (ws closes with it by itself). */
  InvalidPayload: 1007,
  /** Policy violation: refused after admission (bad resume position, client id mismatch, flood limits…). */
  Policy: 1008,
  /** A frame larger than the configured maximum (ws closes with it by itself, from maxPayload). */
  TooLarge: 1009,
  /** Something failed inside the gateway; the session may still be resumable. */
  Internal: 1011,
  /** Overloaded: try again later (mapped from HTTP 429/503). */
  TryAgainLater: 1013,

  /** The session ended: idle timeout, ended by the gateway or the upstream is gone for good. Start a new one. */
  SessionEnded: 4001,
  /** The session was taken over by a newer connection (a resume elsewhere). Do not reconnect this one. */
  SessionMoved: 4002,
  /** The session named on connect is unknown, expired, or belongs to another client. Start a new one. */
  SessionNotFound: 4004,
  /** The client read too slowly: messages it had not received overflowed the session's outbox bound. Start over. */
  OutboxOverflow: 4008,
  /** S2 refused the transport switch (oscillation guard); retry later on the transport used before. */
  TransportSwitchRefused: 4009,
  /** The resume position is older than what the session still holds; messages would be lost. Start over. */
  ResumeUnavailable: 4010,
  /**
   * The credential the connection was admitted with expired or was revoked (its API key removed)
   * (~401); reconnect with a valid one and resume.
   */
  CredentialExpired: 4401,
  /** The client was disabled or is no longer allowed (~403), while connected. */
  ClientRefused: 4403,
} as const;

export type EndReasonCode = (typeof EndReason)[keyof typeof EndReason];

/**
 * Ends of one stream said in HTTP terms: what a Streamable HTTP stream that has not answered yet
 * replies with (the status), and what the other transports read them as ({@link toCloseCode}).
 */
export const StreamEnd = {
  /** A newer GET stream or a resumed stream replaced this one (WebSocket: 4002). */
  Replaced: 409,
  /** The upstream ended the request without an answer (WebSocket: 1011). */
  NoAnswer: 502,
  /** A new session could not get an upstream (pool exhausted): WebSocket 1013, HTTP 503. */
  RetryLater: 503,
} as const;

/**
 * The close code an end reason is read as, on a WebSocket close frame and in a stream's `error`
 * event. Session codes (4xxx, 3xxx) and valid RFC 6455 codes pass through; HTTP-flavoured codes
 * are translated; anything else becomes 1008.
 */
export function toCloseCode(code: number): number {
  if (code >= 4000 && code <= 4999) return code;
  if (code >= 3000 && code <= 3999) return code;
  switch (code) {
    case 1000:
    case 1001:
    case 1002:
    case 1003:
    case 1007:
    case 1008:
    case 1009:
    case 1010:
    case 1011:
    case 1012:
    case 1013:
    case 1014:
      return code;
    case 404:
    case 410:
      return EndReason.SessionNotFound;
    case 409:
      return EndReason.SessionMoved;
    case 413:
      return EndReason.TooLarge;
    case 429:
    case 503:
      return EndReason.TryAgainLater;
    default:
      return code >= 500 && code <= 599 ? EndReason.Internal : EndReason.Policy;
  }
}
