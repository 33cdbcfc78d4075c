/**
 * Client ids: what names a client everywhere (rules, limits, sessions, metrics labels, logs, Redis
 * keys). Plain TypeScript shared by every layer.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** The client id of a client that did not name itself (until authentication proves one). */
export const ANONYMOUS_CLIENT = 'anonymous';

/** Header a client names itself with when authentication is off (`AUTH_MODE=none`). */
export const CLIENT_ID_HEADER = 'x-mcp-client-id';

/**
 * The characters of a client name: a `clients:` entry, a token subject, a certificate name. What
 * is safe in a metric label, a log line, a Redis key and a header.
 */
export const CLIENT_NAME_PATTERN = /^[A-Za-z0-9._:@|-]{1,128}$/;

/** A claimed (unauthenticated) client id: the name characters without `|`. */
const CLAIMED_CLIENT_ID_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;

/**
 * The client id a request claims (header, or `client_id` in the query for browsers). Unproven: the
 * policy layer replaces it with the id a credential proves. A malformed id is treated as absent.
 */
export function clientIdFrom(headers: IncomingHttpHeaders, query?: Record<string, unknown>): string {
  const fromHeader = headers[CLIENT_ID_HEADER];
  const value = typeof fromHeader === 'string' ? fromHeader : query?.client_id;
  return typeof value === 'string' && CLAIMED_CLIENT_ID_PATTERN.test(value) ? value : ANONYMOUS_CLIENT;
}
