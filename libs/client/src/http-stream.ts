import { ErrorCode, SseParser, type SseHandler } from '@mcp-gateway/protocol';
import { ResilientTransportError, type FailureReason } from './errors';
import { TRANSPORT_LABEL, type TransportKind } from './wire';

/**
 * Reads an SSE response body to its end, dispatching events as they arrive (priming events with
 * empty data included: their id names the stream). Resolves when the server ended the stream,
 * rejects when the connection broke (or was aborted).
 */
export async function readEventStream(response: Response, handler: SseHandler): Promise<void> {
  if (!response.body) return;
  const parser = new SseParser(handler, true);
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value) parser.pushBytes(value);
    }
    parser.end();
  } finally {
    reader.releaseLock();
  }
}

/** The JSON-RPC error code and message of a gateway's error body, when it has one. */
export async function errorBody(response: Response): Promise<{ code?: number; message?: string }> {
  try {
    const body = (await response.json()) as { error?: { code?: unknown; message?: unknown } };
    const code = typeof body?.error?.code === 'number' ? body.error.code : undefined;
    const message = typeof body?.error?.message === 'string' ? body.error.message : undefined;
    return { code, message };
  } catch {
    return {};
  }
}

/**
 * Turns a refused HTTP answer into an error that says whether reconnecting can help.
 * `hasSession`: a 404 then means the session is gone (not that the endpoint is missing).
 */
export async function httpRefusal(
  transport: TransportKind,
  what: string,
  response: Response,
  hasSession: boolean,
): Promise<ResilientTransportError> {
  const { code, message } = await errorBody(response);
  const status = response.status;
  let reason: FailureReason = 'connect-failed';
  if (code === ErrorCode.TransportSwitchRefused) reason = 'switch-refused';
  else if (code === ErrorCode.ResumeUnavailable) reason = 'resume-unavailable';
  else if (code === ErrorCode.SessionNotFound || (status === 404 && hasSession)) reason = 'session-expired';
  else if (status === 401 || status === 403) reason = 'rejected';
  const text = `${TRANSPORT_LABEL[transport]} ${what}: HTTP ${status}${message ? ` ${message}` : ''}`;
  return new ResilientTransportError(reason, text, { transport, status, rpcCode: code });
}

/** Headers of a response as a lower-case lookup (fetch's Headers already is). */
export function header(response: Response, name: string): string | undefined {
  return response.headers.get(name) ?? undefined;
}

export function isAbort(err: unknown): boolean {
  return (err as { name?: string } | undefined)?.name === 'AbortError';
}

/** A fetch that failed below HTTP (refused, reset, aborted), as the error the transport reports. */
export function networkError(
  transport: TransportKind,
  what: string,
  err: unknown,
  reason: 'connect-failed' | 'connection-lost',
): ResilientTransportError {
  const why = isAbort(err) ? 'aborted' : ((err as Error)?.message ?? String(err));
  const cause = (err as { cause?: { message?: string } })?.cause?.message;
  return new ResilientTransportError(
    reason,
    `${TRANSPORT_LABEL[transport]} ${what} failed: ${why}${cause ? ` (${cause})` : ''}`,
    { transport, cause: err },
  );
}
