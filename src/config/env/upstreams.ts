import { int } from '../schema-fields';
import { setting } from './setting';

/**
 * Upstream connections: connect timeout, restart and reconnect backoff, replica drains, WebSocket
 * upstreams.
 */
export const UPSTREAM_SETTINGS = {
  UPSTREAM_CONNECT_TIMEOUT_MS: setting({
    doc: 'Timeout for an upstream HTTP request to answer its headers.',
    schema: int(100),
    default: 10_000,
  }),
  UPSTREAM_RETRY_MIN_MS: setting({
    doc: 'First and largest delay between restarts of a stdio upstream / reconnects of a network one.',
    schema: int(10),
    default: 200,
  }),
  UPSTREAM_RETRY_MAX_MS: setting({
    doc: 'Largest delay between restarts of a stdio upstream / reconnects of a network one.',
    schema: int(10),
    default: 10_000,
  }),
  UPSTREAM_MAX_RESTARTS: setting({
    doc: 'Restarts of a stdio upstream before the session is told it is gone.',
    schema: int(0),
    default: 5,
  }),
  REPLICA_DRAIN_GRACE_MS: setting({
    doc:
      'A session that leaves its replica (drained, breaker opened, failed) keeps the old upstream ' +
      'connection this long for the calls still in flight on it; calls not answered by then get ' +
      '−31001 (or are sent again on the new replica when a repeat cannot have effects).',
    schema: int(0),
    default: 30_000,
  }),
  UPSTREAM_WS_HEARTBEAT_INTERVAL_MS: setting({
    doc:
      'One shared ping interval for all WebSocket upstreams; one that missed the last pong is ' +
      'reconnected.',
    schema: int(100),
    default: 30_000,
  }),
  UPSTREAM_WS_MAX_FRAME_BYTES: setting({
    doc:
      'Largest frame accepted from a WebSocket upstream (larger → the connection is closed 1009 and ' +
      're-opened).',
    schema: int(1024),
    default: 64 * 1024 * 1024,
  }),
  UPSTREAM_WS_HIGH_WATER_MARK_BYTES: setting({
    doc:
      "Bytes buffered on a WebSocket upstream's socket past which further messages wait (bounded) " +
      'for it to drain.',
    schema: int(1024),
    default: 1024 * 1024,
  }),
};
