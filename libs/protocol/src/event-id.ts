/**
 * SSE event ids. Every server→client message carries the session's sequence number; on
 * Streamable HTTP the id also names the stream it was sent on (`<stream>_<seq>`), so a
 * resume with Last-Event-ID replays exactly that stream. A bare `<seq>` (legacy SSE,
 * WebSocket, cross-transport failover) means "everything after seq".
 */
export interface EventId {
  stream: number | undefined;
  seq: number;
}

export function formatEventId(stream: number | undefined, seq: number): string {
  return stream === undefined ? String(seq) : `${stream}_${seq}`;
}

export function parseEventId(text: string | undefined | null): EventId | undefined {
  if (!text) return undefined;
  const sep = text.indexOf('_');
  if (sep === -1) {
    const seq = toInt(text);
    return seq === undefined ? undefined : { stream: undefined, seq };
  }
  const stream = toInt(text.slice(0, sep));
  const seq = toInt(text.slice(sep + 1));
  if (stream === undefined || seq === undefined) return undefined;
  return { stream, seq };
}

function toInt(s: string): number | undefined {
  if (!/^\d{1,15}$/.test(s)) return undefined;
  return Number(s);
}
