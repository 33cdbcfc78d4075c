import { int } from '../schema-fields';
import { setting } from './setting';

/** Flood protection and slow-request limits. */
export const FLOOD_SETTINGS = {
  MAX_CONNECTIONS: setting({
    doc:
      'Live client connections, all addresses together (0: no cap; lowered to 90 % of the ' +
      'descriptor limit).',
    schema: int(0),
    default: 50_000,
  }),
  MAX_CONNECTIONS_PER_IP: setting({
    doc:
      "Live connections from one client address (0: no cap); a trusted proxy's own connections " +
      'count only globally. Default 1000, but off while bound to loopback (every client is this ' +
      'host), as are the two per-address rates below unless set.',
    schema: int(0),
  }),
  CONNECT_RATE_PER_IP: setting({
    doc:
      'New connections per second from one address (token bucket; 0: no limit). Default 100 (off on ' +
      'a loopback bind).',
    schema: int(0),
  }),
  CONNECT_BURST_PER_IP: setting({
    doc: 'New connections one address may open at once before CONNECT_RATE_PER_IP applies.',
    schema: int(1),
    default: 200,
  }),
  SESSION_RATE_PER_IP: setting({
    doc:
      'New sessions per second from one client address (X-Forwarded-For only from TRUSTED_PROXIES; ' +
      '0: no limit). Default 20 (off on a loopback bind).',
    schema: int(0),
  }),
  SESSION_BURST_PER_IP: setting({
    doc: 'New sessions one address may open at once before SESSION_RATE_PER_IP applies.',
    schema: int(1),
    default: 100,
  }),
  MAX_SESSIONS_PER_CLIENT: setting({
    doc: 'Live sessions one client id may hold (0: no cap).',
    schema: int(0),
    default: 100,
  }),
  INIT_DEADLINE_MS: setting({
    doc:
      'A WebSocket or legacy SSE connection that has not sent initialize within this long is closed ' +
      '(0: never).',
    schema: int(0),
    default: 10_000,
  }),
  HEADERS_TIMEOUT_MS: setting({
    doc:
      'Time a connection has to send a complete request head (slowloris; also cuts connections that ' +
      'send nothing): 408.',
    schema: int(100),
    default: 10_000,
  }),
  HTTP_REQUEST_TIMEOUT_MS: setting({
    doc:
      'Time to receive a whole request, head and body (0: none; must not be below ' +
      'HEADERS_TIMEOUT_MS); responses and streams are not bounded by it.',
    schema: int(0),
    default: 30_000,
  }),
  MAX_HEADER_BYTES: setting({
    doc: 'Largest request head (request line and headers) in bytes; larger → 431.',
    schema: int(1024, 1024 * 1024),
    default: 16 * 1024,
  }),
};
