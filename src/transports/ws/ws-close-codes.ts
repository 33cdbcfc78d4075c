/**
 * WebSocket close codes the gateway sends, in one place, so a client (and the resilient
 * client in libs/client) can tell "reconnect and resume" from "start over" from "give up".
 *
 * 1000–1015 are RFC 6455 / IANA codes; 4000–4999 are private-use codes that MCP leaves
 * free. 4xxx codes mirror HTTP statuses where one exists (4004 ~ 404, 4009 ~ 409), so
 * they read naturally next to the Streamable HTTP transport's answers.
 */
export const WsClose = {
  /** Normal end. From the client it also means "end my session" (see WsCloseFromClient). */
  Normal: 1000,
  /** The gateway is shutting down; the session stays resumable (another node, or after restart). */
  GoingAway: 1001,
  /** The peer broke the WebSocket protocol (ws closes with it by itself). */
  ProtocolError: 1002,
  /** A text frame was not valid UTF-8 (ws closes with it by itself). */
  InvalidPayload: 1007,
  /** Policy violation: refused after admission (bad resume position, client id mismatch, …). */
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

export type WsCloseCode = (typeof WsClose)[keyof typeof WsClose];

/**
 * Close codes a client may send and what the gateway does with them:
 * 1000 ends the session (the WebSocket counterpart of Streamable HTTP's DELETE); any other
 * code, or none (1005, what the SDK client and most browsers send), or a dropped connection
 * (1006) keeps the session resumable until the idle timeout. A client that leaves on purpose
 * but means to come back (transport switch, page reload) should close with 1001 or 4000–4999.
 */
export const WsCloseFromClient = { EndSession: WsClose.Normal } as const;

/**
 * Maps the code a session (or another part) passes to ClientChannel.close() to a code
 * a WebSocket close frame may carry. Sessions speak in 4xxx codes already; HTTP-flavoured
 * codes (what the SSE/HTTP channels take) are translated; anything else becomes 1008.
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
      return WsClose.SessionNotFound;
    case 409:
      return WsClose.SessionMoved;
    case 413:
      return WsClose.TooLarge;
    case 429:
    case 503:
      return WsClose.TryAgainLater;
    default:
      return code >= 500 && code <= 599 ? WsClose.Internal : WsClose.Policy;
  }
}

/** Close reasons are limited to 123 bytes of UTF-8 (ws throws beyond); cut at a character boundary. */
export function closeReason(text: string): string {
  if (Buffer.byteLength(text) <= 123) return text;
  let out = text.slice(0, 120);
  while (Buffer.byteLength(out) > 120) out = out.slice(0, -1);
  // Never end on half a surrogate pair.
  const last = out.charCodeAt(out.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) out = out.slice(0, -1);
  return `${out}...`;
}
