import { z } from 'zod';
import { TrustedProxies } from '../core/trusted-proxies';
import { LOG_LEVEL_NAMES, parseLogLevels } from './log-level-names';
import { bool, csv, int } from './schema-fields';

/**
 * Every environment variable the gateway reads, declared once: its name (the key), what it means
 * (`doc`), how its value is checked (`schema`) and its default (none: the variable is optional).
 * EnvSchema and the EnvConfig type are derived from this table, README's configuration reference
 * is generated from it (scripts/config-table.mjs), and load-config.ts maps the parsed values onto
 * GatewayConfig. Nothing else reads process.env.
 */

/** One environment variable; `setting()` checks that the default is a value the schema accepts. */
export interface EnvSetting<S extends z.ZodTypeAny = z.ZodTypeAny> {
  /** What the variable means, as README's configuration reference shows it. */
  readonly doc: string;
  /** Checks (and coerces) the value; environment values arrive as strings. */
  readonly schema: S;
  /** Used when the variable is unset or empty; absent: the setting is optional (undefined). */
  readonly default?: z.input<S>;
}

function setting<S extends z.ZodTypeAny>(declared: {
  doc: string;
  schema: S;
  default: z.input<S>;
}): EnvSetting<S> & { default: z.input<S> };
function setting<S extends z.ZodTypeAny>(declared: { doc: string; schema: S }): EnvSetting<S>;
function setting<S extends z.ZodTypeAny>(declared: EnvSetting<S>): EnvSetting<S> {
  return declared;
}

export const ENV_SETTINGS = {
  HOST: setting({
    doc: 'Interface to listen on. Loopback by default: exposing the gateway is a deliberate choice.',
    schema: z.string(),
    default: '127.0.0.1',
  }),
  PORT: setting({
    doc: 'TCP port (0 picks a free one).',
    schema: int(0, 65535),
    default: 3000,
  }),
  LOG_LEVEL: setting({
    doc: 'pino level: fatal, error, warn, info, debug, trace, silent.',
    schema: z.enum(LOG_LEVEL_NAMES),
    default: 'info',
  }),
  GATEWAY_CONFIG: setting({
    doc: 'Path of gateway.yaml; when unset, the CLI (`npm start`) uses ./gateway.yaml if it exists.',
    schema: z.string(),
  }),
  GATEWAY_CONFIG_WATCH: setting({
    doc: 'Watch gateway.yaml and apply valid edits to services and replicas live.',
    schema: bool,
    default: true,
  }),
  GATEWAY_CONFIG_POLL_MS: setting({
    doc:
      'Interval of the stat poll that backs up the file watch (fs.watch misses some editors and ' +
      'mounts); 0 = off.',
    schema: int(0),
    default: 2000,
  }),
  ADMIN_TOKEN: setting({
    doc: 'Bearer token of the admin API under /admin/; when unset the admin API is off (404).',
    schema: z.string().min(16, 'use at least 16 characters'),
  }),
  MAX_BODY_BYTES: setting({
    doc: 'Largest accepted HTTP request body in bytes (larger → 413).',
    schema: int(1024),
    default: 4 * 1024 * 1024,
  }),
  MAX_JSON_DEPTH: setting({
    doc:
      'Deepest nesting of arrays and objects accepted in a client message (a batch counts as one ' +
      'level); deeper → −32600 (HTTP 400). Keeps every later JSON.stringify clear of stack ' +
      'overflow.',
    schema: int(2, 100_000),
    default: 64,
  }),
  ALLOWED_ORIGINS: setting({
    doc:
      'Origins allowed to call the gateway from a browser, besides localhost ones while bound to ' +
      'loopback.',
    schema: csv,
    default: [],
  }),
  ALLOWED_HOSTS: setting({
    doc:
      'Host header values accepted (DNS-rebinding protection); empty = loopback names while bound ' +
      'to loopback.',
    schema: csv,
    default: [],
  }),
  TRUSTED_PROXIES: setting({
    doc: 'Peers (addresses or CIDR ranges) whose X-Forwarded-For/-Proto/-Host are believed; none by default.',
    schema: csv.superRefine((entries, ctx) => {
      for (const message of TrustedProxies.problems(entries))
        ctx.addIssue({ code: z.ZodIssueCode.custom, message });
    }),
    default: [],
  }),
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
  ENABLE_2026_07_28: setting({
    doc: 'Serve the sessionless 2026-07-28 revision of Streamable HTTP.',
    schema: bool,
    default: true,
  }),
  SESSIONLESS_MAX_BRIDGES: setting({
    doc:
      'Hidden upstream sessions the 2026-07-28 bridge keeps (one per client and service); past it ' +
      'the least recently used idle one is ended, and with none idle new clients get 503.',
    schema: int(1),
    default: 1000,
  }),
  SESSIONLESS_STATE_KEY: setting({
    doc:
      'HMAC key of the requestState the 2026-07-28 bridge mints for multi-round-trip requests; ' +
      'unset: a random key per process. Set the same key on every node of a cluster.',
    schema: z.string().min(32, 'use at least 32 characters'),
  }),
  SESSIONLESS_INPUT_TTL_MS: setting({
    doc:
      "How long a request answered with input_required waits for the client's retry (and its " +
      'requestState lives); then its upstream request is released with an error.',
    schema: int(100),
    default: 60_000,
  }),
  SESSIONLESS_INPUT_MAX_PER_CLIENT: setting({
    doc: 'Requests of one client that may wait for an input_required retry at once (more: 429).',
    schema: int(1),
    default: 16,
  }),
  WS_HEARTBEAT_INTERVAL_MS: setting({
    doc:
      'One shared ping interval for all WebSocket connections; a peer that missed the last pong is ' +
      'dropped.',
    schema: int(100),
    default: 30_000,
  }),
  WS_MAX_FRAME_BYTES: setting({
    doc: 'Largest WebSocket frame accepted (larger → close 1009); defaults to MAX_BODY_BYTES.',
    schema: int(1024),
  }),
  WS_COMPRESSION: setting({
    doc: 'permessage-deflate on WebSocket connections: off by default, it costs memory per connection.',
    schema: bool,
    default: false,
  }),
  WS_COMPRESSION_THRESHOLD_BYTES: setting({
    doc: 'Frames smaller than this are sent uncompressed even when compression is on.',
    schema: int(0),
    default: 1024,
  }),
  CHANNEL_HIGH_WATER_MARK_BYTES: setting({
    doc: 'Bytes a client connection may have buffered before the session pauses its upstream.',
    schema: int(1024),
    default: 1024 * 1024,
  }),
  TLS_CERT_FILE: setting({
    doc: 'PEM certificate (chain) file: when set with TLS_KEY_FILE, the one port speaks HTTPS and WSS.',
    schema: z.string(),
  }),
  TLS_KEY_FILE: setting({
    doc: 'PEM private key file.',
    schema: z.string(),
  }),
  TLS_CA_FILE: setting({
    doc: 'PEM CA bundle used to verify client certificates.',
    schema: z.string(),
  }),
  TLS_CLIENT_CERT: setting({
    doc: 'Client certificates: none, request (verify when sent) or require.',
    schema: z.enum(['none', 'request', 'require']),
    default: 'none',
  }),
  TLS_RELOAD_INTERVAL_MS: setting({
    doc:
      'How often the certificate files are checked for a renewal (ms); a change is loaded without ' +
      'restart.',
    schema: int(0),
    default: 60_000,
  }),
  S2_MAX_SWITCHES: setting({
    doc: 'S2 anti-oscillation: transport switches allowed per client within the window.',
    schema: int(0),
    default: 3,
  }),
  S2_WINDOW_MS: setting({
    doc: 'S2 anti-oscillation window (ms).',
    schema: int(1000),
    default: 60_000,
  }),
  // ── settings: authentication, identity, S5 ──
  AUTH_MODE: setting({
    doc:
      'How clients prove who they are: none, api_key, jwt, oauth, mtls, or a comma-separated list ' +
      '(any one suffices). Unset: none on a loopback bind; on any other bind the gateway refuses to ' +
      'start.',
    schema: csv.pipe(z.array(z.enum(['none', 'api_key', 'jwt', 'oauth', 'mtls'])).min(1)),
  }),
  AUTH_JWT_SECRET: setting({
    doc: 'HS256 secret that signs client JWTs (jwt / oauth modes), at least 32 characters.',
    schema: z.string().min(32, 'use at least 32 characters'),
  }),
  AUTH_JWKS_URL: setting({
    doc:
      'JWKS URL with the RS/ES keys that sign client JWTs; fetched once, refetched on an unknown ' + '`kid`.',
    schema: z.string().url(),
  }),
  AUTH_JWKS_COOLDOWN_MS: setting({
    doc:
      'After a JWKS fetch, how long before a token with an unknown `kid` may trigger another fetch ' +
      '(ms).',
    schema: int(0),
    default: 30_000,
  }),
  AUTH_JWT_ISSUER: setting({
    doc: 'Required `iss` of client JWTs (comma-separated for several).',
    schema: csv,
  }),
  AUTH_JWT_AUDIENCE: setting({
    doc: "Accepted `aud` values; unset in oauth mode: the gateway's canonical resource URL (RFC 8707).",
    schema: csv,
  }),
  AUTH_JWT_CLOCK_TOLERANCE_S: setting({
    doc: 'Clock skew allowed on `exp` / `nbf` (seconds).',
    schema: int(0, 600),
    default: 30,
  }),
  AUTH_JWT_CLIENT_ID_CLAIM: setting({
    doc: 'The JWT claim that names the client.',
    schema: z.string().min(1),
    default: 'sub',
  }),
  AUTH_REQUIRED_SCOPES: setting({
    doc:
      'Scopes every token must carry (oauth / jwt modes); a token without one gets 403 ' +
      'insufficient_scope.',
    schema: csv,
    default: [],
  }),
  AUTH_AUTHORIZATION_SERVERS: setting({
    doc: 'Issuer URLs of the authorization servers named in the protected resource metadata (RFC ' + '9728).',
    schema: csv,
    default: [],
  }),
  AUTH_SCOPES_SUPPORTED: setting({
    doc: '`scopes_supported` of the protected resource metadata; defaults to AUTH_REQUIRED_SCOPES.',
    schema: csv,
  }),
  PUBLIC_URL: setting({
    doc:
      'Public base URL of the gateway (e.g. https://gw.example.com): the OAuth resource is ' +
      '<PUBLIC_URL>/mcp.',
    schema: z.string().url(),
  }),
  AUTH_MTLS_CLIENT_ID: setting({
    doc: "mtls mode: the client id is the certificate subject's CN, or its first DNS / URI SAN.",
    schema: z.enum(['cn', 'san']),
    default: 'cn',
  }),
  AUTH_WS_QUERY_TOKEN: setting({
    doc:
      'Accept a WebSocket token in `?access_token=` (browsers; tokens in URLs end up in logs): off ' +
      'by default.',
    schema: bool,
    default: false,
  }),
  S5_TIMEOUT_MS: setting({
    doc:
      'How long S5 (check_compliance, verify_identity) may take to answer before the default ' +
      'applies (ms).',
    schema: int(1, 60_000),
    default: 250,
  }),
  S5_DEFAULT_VERDICT: setting({
    doc: 'What an unanswered (timed-out or failed) S5 question counts as.',
    schema: z.enum(['allow', 'deny']),
    default: 'allow',
  }),
  // ── settings: rate limits and per-client authorization ──
  RATE_LIMIT_ENABLED: setting({
    doc: 'Per-client rate limits on every transport (on by default, whatever the authentication mode).',
    schema: bool,
    default: true,
  }),
  RATE_LIMIT_PER_SECOND: setting({
    doc:
      'Requests per second each client may send (token bucket refill rate); overridable per client ' +
      'in gateway.yaml.',
    schema: z.coerce.number().min(0).max(1_000_000),
    default: 100,
  }),
  RATE_LIMIT_BURST: setting({
    doc:
      'Requests a client may send at once after a quiet spell (the bucket size); defaults to ' +
      'RATE_LIMIT_PER_SECOND.',
    schema: int(1, 10_000_000),
  }),
  REDIS_URL: setting({
    doc:
      'Redis shared by every gateway node: rate limits are then enforced cluster-wide ' +
      "(rate-limiter-flexible's Redis store).",
    schema: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
  }),
  RATE_LIMIT_REDIS_FAIL_MODE: setting({
    doc:
      'While Redis is unreachable: `open` = each node limits alone (in-memory insurance limiter), ' +
      '`closed` = refuse every request.',
    schema: z.enum(['open', 'closed']),
    default: 'open',
  }),
  RATE_LIMIT_SYNC_MS: setting({
    doc:
      'How often each node reports what it granted to Redis and learns what the cluster has left ' + '(ms).',
    schema: int(1, 10_000),
    default: 50,
  }),
  // ── settings: flood protection and slow-request limits ──
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
  // ── settings: metrics and health ──
  METRICS_MAX_TOOL_LABELS: setting({
    doc:
      'Tool names (declared by upstreams in tools/list) that get their own tools/call latency ' +
      'series; the rest are "other".',
    schema: int(0),
    default: 100,
  }),
  HEALTH_MAX_EVENT_LOOP_LAG_MS: setting({
    doc:
      'Event-loop delay (ms, p99 over the last few seconds) above which /health/live reports the ' +
      'process stuck.',
    schema: int(1),
    default: 2000,
  }),
  HEALTH_REDIS_URL: setting({
    doc:
      'Deprecated alias of REDIS_URL for readiness (/health/ready pings REDIS_URL; this only when ' +
      'REDIS_URL is unset).',
    schema: z.string(),
  }),
  // ── settings: tracing and logs ──
  OTEL_EXPORTER_OTLP_ENDPOINT: setting({
    doc:
      'OTLP/HTTP collector base URL (`/v1/traces` is appended); tracing is off while neither ' +
      'endpoint is set.',
    schema: z.string().url(),
  }),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: setting({
    doc: 'OTLP/HTTP traces URL used as is (wins over OTEL_EXPORTER_OTLP_ENDPOINT).',
    schema: z.string().url(),
  }),
  OTEL_TRACES_SAMPLER_ARG: setting({
    doc:
      "Fraction of new traces sampled (0–1), ParentBased(TraceIdRatioBased): a sampled caller's " +
      'trace is always kept.',
    schema: z.coerce.number().min(0).max(1),
    default: 1,
  }),
  OTEL_SERVICE_NAME: setting({
    doc: "service.name of the gateway's spans.",
    schema: z.string().min(1),
    default: 'mcp-gateway',
  }),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: setting({
    doc:
      'OTLP/HTTP encoding of exported spans: `http/protobuf` (the OpenTelemetry default; smaller ' +
      'and cheaper to encode) or `http/json`.',
    schema: z.enum(['http/protobuf', 'http/json']),
  }),
  OTEL_EXPORTER_OTLP_PROTOCOL: setting({
    doc: 'Same as OTEL_EXPORTER_OTLP_TRACES_PROTOCOL for every signal (the traces one wins).',
    schema: z.enum(['http/protobuf', 'http/json']),
  }),
  OTEL_BSP_MAX_QUEUE_SIZE: setting({
    doc:
      'Most finished spans held for export; beyond it new spans are dropped (and counted by the ' +
      'SDK), never queued without bound.',
    schema: int(1),
    default: 8192,
  }),
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: setting({
    doc: 'Spans per OTLP export request (at most the queue size).',
    schema: int(1),
    default: 1024,
  }),
  OTEL_BSP_SCHEDULE_DELAY: setting({
    doc: 'Most time (ms) a finished span waits before its batch is exported.',
    schema: int(1),
    default: 1000,
  }),
  LOG_LEVELS: setting({
    doc:
      'Log level per module, e.g. `Session=debug,StreamableHttp=warn` (others use LOG_LEVEL); changeable ' +
      'live via PUT /admin/log-levels; `Audit` cannot be set below info.',
    schema: z
      .string()
      .refine((v) => parseLogLevels(v) !== undefined, 'must be Module=level pairs separated by commas')
      // Audit lines cannot be switched off (see AUDIT_FLOOR in telemetry/logging/log-levels.ts).
      .refine(
        (v) => !['warn', 'error', 'fatal', 'silent'].includes(parseLogLevels(v)?.Audit ?? 'info'),
        'Audit cannot be set below info (trace, debug or info): audit lines stay on',
      ),
    default: '',
  }),
  LOG_FORMAT: setting({
    doc:
      'Log format: `pretty` (one readable line), `json`, or `auto` (pretty when stdout is a ' + 'terminal).',
    schema: z.enum(['auto', 'pretty', 'json']),
    default: 'auto',
  }),
  // ── settings: dashboard, alerts and S4 ──
  STATS_SAMPLE_INTERVAL_MS: setting({
    doc: 'How often the stats sampler behind /dashboard, the alerts and S4 takes a sample (ms).',
    schema: int(100),
    default: 1000,
  }),
  STATS_HISTORY_SAMPLES: setting({
    doc: 'Samples kept for the sliding windows (with the default interval: five minutes).',
    schema: int(10, 10_000),
    default: 300,
  }),
  DASHBOARD_OPEN: setting({
    doc: 'Serve /dashboard without ADMIN_TOKEN on a non-loopback bind (off: there it needs the token).',
    schema: bool,
    default: false,
  }),
  ALERT_POOL_UTILISATION: setting({
    doc: "Alert: a pool's in-use share of its maximum above this (0–1).",
    schema: z.coerce.number().min(0).max(1),
    default: 0.9,
  }),
  ALERT_ERROR_RATE: setting({
    doc: 'Alert: errors per client message above this share (0–1) over ALERT_WINDOW_MS.',
    schema: z.coerce.number().min(0).max(1),
    default: 0.05,
  }),
  ALERT_ERROR_RATE_MIN_MESSAGES: setting({
    doc: 'Alert: fewest client messages in the window before the error rate is judged.',
    schema: int(1),
    default: 20,
  }),
  ALERT_FAILOVERS: setting({
    doc: 'Alert: transport failovers within ALERT_WINDOW_MS above this count.',
    schema: int(0),
    default: 10,
  }),
  ALERT_P99_MS: setting({
    doc: 'Alert: p99 request latency over ALERT_WINDOW_MS above this (ms).',
    schema: int(1),
    default: 500,
  }),
  ALERT_HEAP_USED: setting({
    doc:
      "Alert: V8 heap used / the heap's limit (heap_size_limit, set by --max-old-space-size) above " +
      'this (0–1), held for ALERT_HEAP_FOR_MS.',
    schema: z.coerce.number().min(0).max(1),
    default: 0.8,
  }),
  ALERT_HEAP_FOR_MS: setting({
    doc: 'Alert: how long the heap must stay above its threshold before the alert is raised (ms).',
    schema: int(0),
    default: 60_000,
  }),
  ALERT_WINDOW_MS: setting({
    doc: 'Alert: the sliding window of the error-rate, failover and p99 rules (ms).',
    schema: int(1000),
    default: 60_000,
  }),
  S4_INTERVAL_MS: setting({
    doc:
      'S4: how often gateway_metrics is published on s4_intelligence, and the usage-pattern window ' +
      '(ms).',
    schema: int(1000),
    default: 10_000,
  }),
  S4_BURST_RATIO: setting({
    doc: "S4: bursty when a client's busiest second is this many times its mean per second.",
    schema: z.coerce.number().min(1),
    default: 4,
  }),
  S4_TOOL_HEAVY_SHARE: setting({
    doc: "S4: tool-heavy when this share (0–1) of a client's requests are tools/call.",
    schema: z.coerce.number().min(0).max(1),
    default: 0.8,
  }),
  S4_ANOMALY_SIGMA: setting({
    doc: 'S4: an anomaly is a window figure this many standard deviations above its moving average.',
    schema: z.coerce.number().min(0.5),
    default: 3,
  }),
  // ── settings: pool and upstream settings ──
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

type EnvSettings = typeof ENV_SETTINGS;

/** A declared setting's field of EnvSchema: its schema with its default applied, or optional. */
type EnvField<T extends EnvSetting> = T extends { default: unknown }
  ? z.ZodDefault<T['schema']>
  : z.ZodOptional<T['schema']>;

function envField(declared: EnvSetting): z.ZodTypeAny {
  return 'default' in declared ? declared.schema.default(declared.default) : declared.schema.optional();
}

/** The environment, validated: one field per ENV_SETTINGS entry, in the same order. */
export const EnvSchema = z.object(
  Object.fromEntries(Object.entries(ENV_SETTINGS).map(([name, declared]) => [name, envField(declared)])) as {
    [K in keyof EnvSettings]: EnvField<EnvSettings[K]>;
  },
);
export type EnvConfig = z.infer<typeof EnvSchema>;

/** How clients may authenticate (AUTH_MODE lists one or more). */
export type AuthModeName = NonNullable<EnvConfig['AUTH_MODE']>[number];
