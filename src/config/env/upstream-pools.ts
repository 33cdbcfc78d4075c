import { int } from '../schema-fields';
import { setting } from './setting';

/** Upstream HTTP connection pools and warm stdio processes. */
export const UPSTREAM_POOL_SETTINGS = {
  UPSTREAM_HTTP_KEEPALIVE_MS: setting({
    doc:
      'Idle keep-alive sockets to HTTP upstreams are closed after this long: keep it below the ' +
      "upstreams' own keep-alive (Node's default is 5 s) so a socket the server is closing is never " +
      'reused.',
    schema: int(100),
    default: 4000,
  }),
  UPSTREAM_HTTP_CONNECTIONS: setting({
    doc:
      'Sockets per HTTP upstream origin; 0 sizes them from the pooled services using the origin ' +
      '(pool max × (2 + maxConcurrentPerConnection)) and leaves dedicated-mode origins unbounded.',
    schema: int(0),
    default: 0,
  }),
  STDIO_WARM_PROCESSES: setting({
    doc:
      'Pre-spawned warm processes per stdio replica in dedicated mode, each used by one new session ' +
      '(0: off).',
    schema: int(0, 64),
    default: 2,
  }),
};
