import type { IncomingHttpHeaders } from 'node:http';
import { ANONYMOUS_CLIENT } from '../../session/session';

export { ANONYMOUS_CLIENT };

/** Header a client names itself with until authentication (API keys / JWT) takes over the client id. */
export const CLIENT_ID_HEADER = 'x-mcp-client-id';

const CLIENT_ID_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;

/**
 * The client id a request speaks for. Unauthenticated for now: the policy layer will
 * replace this with the id proven by the credential. A malformed id is treated as absent.
 */
export function clientIdFrom(headers: IncomingHttpHeaders, query?: Record<string, unknown>): string {
  const fromHeader = headers[CLIENT_ID_HEADER];
  const value = typeof fromHeader === 'string' ? fromHeader : query?.client_id;
  return typeof value === 'string' && CLIENT_ID_PATTERN.test(value) ? value : ANONYMOUS_CLIENT;
}
