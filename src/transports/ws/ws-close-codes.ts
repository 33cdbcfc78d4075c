import { EndReason, toCloseCode } from '../../core/end-reason';

/**
 * WebSocket close codes the gateway sends: the end reasons of src/core/end-reason.ts, which are
 * the close codes themselves, so a client (and the resilient client in libs/client) can tell
 * "reconnect and resume" from "start over" from "give up".
 */
export const WsClose = EndReason;

/** The close code of an end reason (src/core/end-reason.ts): the WebSocket transport's one mapping. */
export { toCloseCode };

export type WsCloseCode = (typeof WsClose)[keyof typeof WsClose];

/**
 * Close codes a client may send and what the gateway does with them:
 * 1000 ends the session (the WebSocket counterpart of Streamable HTTP's DELETE); any other
 * code, or none (1005, what the SDK client and most browsers send), or a dropped connection
 * (1006) keeps the session resumable until the idle timeout. A client that leaves on purpose
 * but means to come back (transport switch, page reload) should close with 1001 or 4000–4999.
 */
export const WsCloseFromClient = { EndSession: WsClose.Normal } as const;

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
