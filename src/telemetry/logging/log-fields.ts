import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** What identifies one client interaction in a log line, on every transport. */
export interface LogFields {
  correlationId: string | undefined;
  sessionId: string;
  clientId: string;
  traceId: string | undefined;
}

/** A client-supplied request id is taken only when it is short and plain (it ends up in logs and answers). */
const SANE_ID = /^[\w.:@/+=-]{1,128}$/;

/**
 * The correlation id of one client request: the caller's `x-request-id` / `x-correlation-id`
 * when it is sane, else a fresh one. Only called when something is going to be logged.
 */
export function correlationIdFrom(headers: IncomingHttpHeaders | undefined): string {
  const given = first(headers?.['x-request-id']) ?? first(headers?.['x-correlation-id']);
  return given !== undefined && SANE_ID.test(given) ? given : randomUUID();
}

const TRACEPARENT = /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/;

/** The trace id a `traceparent` names (undefined when it is absent or malformed). */
export function traceIdOf(traceparent: unknown): string | undefined {
  if (typeof traceparent !== 'string') return undefined;
  const m = TRACEPARENT.exec(traceparent.trim());
  return m && m[1] !== '00000000000000000000000000000000' ? m[1] : undefined;
}

/** The fields of a line about `session` (and one of its requests, when `correlationId` is given). */
export function logFields(
  session: { readonly id: string; readonly clientId: string },
  correlationId?: string,
  traceId?: string,
): LogFields {
  return { correlationId, sessionId: session.id, clientId: session.clientId, traceId };
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
