import { int } from '../schema-fields';
import { setting } from './setting';

/**
 * Client sessions: idle and detached timeouts, descriptor admission, the client-transport breakers,
 * the outbox kept for resume, de-duplication, SSE streams and shutdown.
 */
export const SESSION_SETTINGS = {
  SESSION_IDLE_TIMEOUT_MS: setting({
    doc:
      'A Streamable HTTP session with no live stream and no message for this long is ended ' +
      '(Streamable HTTP clients hold no connection between POSTs, so only activity counts).',
    schema: int(1000),
    default: 10 * 60 * 1000,
  }),
  SESSION_DETACHED_TIMEOUT_MS: setting({
    doc:
      'A WebSocket or legacy SSE session whose connection went away is ended after this long unless ' +
      'the client reconnects and resumes (its resume window; well above the 5 s reconnect target). ' +
      "Frees the session's upstream (a stdio child in dedicated mode) long before the idle timeout.",
    schema: int(1000),
    default: 60_000,
  }),
  SESSION_FD_LIMIT: setting({
    doc:
      "File-descriptor limit new sessions are admitted against; unset: the process's soft " +
      'RLIMIT_NOFILE (read once from /proc/self/limits). A new session past it gets 503 with ' +
      'Retry-After (WebSocket: the upgrade is refused the same way) and the sessions held keep ' +
      'working.',
    schema: int(1),
  }),
  SESSION_FD_HEADROOM_PERCENT: setting({
    doc:
      'Percent of the descriptor limit kept free for the sessions already held (reconnects, ' + 'restarts).',
    schema: int(0, 90),
    default: 10,
  }),
  CLIENT_BREAKER_ERROR_PERCENT: setting({
    doc:
      "Failure percentage within the rolling window that opens a client transport's breaker " +
      "(Streamable HTTP, legacy SSE, WebSocket, each its own). Failures are the gateway's own: " +
      'internal errors and new sessions whose upstream could not be opened; successes are served ' +
      'session creations. While open, new sessions on that transport get 503 / an upgrade refused.',
    schema: int(1, 100),
    default: 50,
  }),
  CLIENT_BREAKER_VOLUME: setting({
    doc: 'Outcomes a client transport needs within the window before its failure percentage counts.',
    schema: int(1),
    default: 10,
  }),
  CLIENT_BREAKER_RESET_MS: setting({
    doc:
      'How long an open client-transport breaker refuses before it lets one new session through ' +
      '(half-open).',
    schema: int(100),
    default: 10_000,
  }),
  CLIENT_BREAKER_WINDOW_MS: setting({
    doc: 'Rolling statistics window of the client-transport breakers.',
    schema: int(1000),
    default: 10_000,
  }),
  SESSION_SWEEP_INTERVAL_MS: setting({
    doc: 'How often the one shared timer looks for idle sessions.',
    schema: int(100),
    default: 5000,
  }),
  OUTBOX_MAX_MESSAGES: setting({
    doc:
      'Server→client messages a session keeps for resume. Clients rarely acknowledge, so a busy ' +
      'session holds this many: it is the window a reconnecting client can still recover.',
    schema: int(1),
    default: 256,
  }),
  OUTBOX_MAX_BYTES: setting({
    doc: 'Bytes of server→client messages a session keeps for resume (also the slow-reader bound).',
    schema: int(1024),
    default: 1024 * 1024,
  }),
  OUTBOX_RESUME_WINDOW_MS: setting({
    doc:
      'How long a message already written to a live connection stays in the outbox so a client that ' +
      'reconnects can resume (clients rarely acknowledge). Longer than the 5 s reconnect target; a ' +
      'resume from before a dropped message fails with −31006. Undelivered messages keep the bounds ' +
      'above.',
    schema: int(1000),
    default: 30_000,
  }),
  OUTBOX_GLOBAL_MAX_BYTES: setting({
    doc:
      "Bytes all sessions' outboxes may hold together. Past it, messages already delivered (kept " +
      'only for a resume) are dropped from the sessions idle the longest first, and counted.',
    schema: int(1024),
    default: 256 * 1024 * 1024,
  }),
  MAX_IN_FLIGHT_PER_SESSION: setting({
    doc: 'Client requests a session may have waiting for the upstream.',
    schema: int(1),
    default: 256,
  }),
  REQUEST_TIMEOUT_MS: setting({
    doc:
      'A request with no answer and no progress notification for this long is answered with an ' +
      'upstream-timeout error and cancelled upstream (0: never). Checked by the idle sweep.',
    schema: int(0),
    default: 5 * 60 * 1000,
  }),
  DEDUPE_WINDOW: setting({
    doc: 'Completed request ids remembered per session for de-duplication of re-sent requests.',
    schema: int(1),
    default: 1024,
  }),
  DEDUPE_WINDOW_MS: setting({
    doc: 'How long a completed request id is remembered for de-duplication (the window in time).',
    schema: int(1000),
    default: 60_000,
  }),
  SSE_RETRY_MS: setting({
    doc: '`retry:` value (ms) sent on SSE streams so clients reconnect by themselves.',
    schema: int(0),
    default: 1000,
  }),
  SSE_KEEPALIVE_MS: setting({
    doc: 'Comment line sent on idle SSE streams so proxies keep them open (0 = off).',
    schema: int(0),
    default: 25_000,
  }),
  SHUTDOWN_GRACE_MS: setting({
    doc: 'How long shutdown waits for streams to drain before closing them.',
    schema: int(0),
    default: 5000,
  }),
};
