import { CLIENT_NAME_PATTERN } from '../core/client-id';
import { CLIENT_KEY_PATTERN, clientCredentialProblems, clientPolicyFields } from './client-policy-schema';
import type { FloodLimits } from '../core/limits';
import { TrustedProxies } from '../core/trusted-proxies';
import { z } from 'zod';
import { assignReplicaIds } from './replica-id';

/**
 * The one configuration schema: environment variables plus an optional gateway.yaml
 * (services and their replicas). Everything else in the gateway reads the parsed result;
 * nothing else reads process.env.
 */

const LOG_LEVEL_NAMES = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevelName = (typeof LOG_LEVEL_NAMES)[number];

/** `Module=level,Other=level` → a map; undefined when a pair or a level is not valid. */
export function parseLogLevels(text: string): Record<string, LogLevelName> | undefined {
  const out: Record<string, LogLevelName> = {};
  for (const part of text.split(',')) {
    const pair = part.trim();
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const level = pair.slice(eq + 1).trim() as LogLevelName;
    if (eq <= 0 || name === '' || !LOG_LEVEL_NAMES.includes(level)) return undefined;
    out[name] = level;
  }
  return out;
}

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
const csv = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  )
  .or(z.array(z.string()));
const bool = z.union([
  z.boolean(),
  z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1'),
]);

/** Fields every replica has, whatever its transport (see README "Routing"). */
const replicaFields = {
  /**
   * Stable name of the replica (its position on the hash ring is derived from it). When unset it
   * is derived from the service and the replica's URL or command, so editing the list renames no
   * other replica. Unique across the file.
   */
  id: z
    .string()
    .regex(/^[A-Za-z0-9._~-]{1,64}$/, 'use 1-64 letters, digits or . _ ~ -')
    .optional(),
  /** Share of the service's sessions, relative to the other replicas' weights. */
  weight: int(1, 1000).default(1),
  /** A draining replica takes no new sessions; the sessions it serves stay. */
  draining: z.boolean().optional(),
};

const urlString = z
  .string()
  .url()
  .refine((u) => /^(https?):\/\//.test(u), 'must be an http:// or https:// URL');

const wsUrlString = z
  .string()
  .url()
  .refine((u) => /^wss?:\/\//.test(u), 'must be a ws:// or wss:// URL');

/** One upstream replica: a URL for network transports, a command for stdio. */
export const ReplicaSchema = z.discriminatedUnion('transport', [
  z
    .object({
      transport: z.literal('streamable-http'),
      url: urlString,
      /** Extra HTTP headers sent to the upstream (e.g. its API key). */
      headers: z.record(z.string()).default({}),
      ...replicaFields,
    })
    .strict(),
  z
    .object({
      transport: z.literal('sse'),
      url: urlString,
      headers: z.record(z.string()).default({}),
      ...replicaFields,
    })
    .strict(),
  z
    .object({
      transport: z.literal('ws'),
      /** MCP over WebSocket (subprotocol `mcp`, one JSON-RPC message per text frame). */
      url: wsUrlString,
      /** Extra HTTP headers sent with the upgrade request (e.g. its API key). */
      headers: z.record(z.string()).default({}),
      ...replicaFields,
    })
    .strict(),
  z
    .object({
      transport: z.literal('stdio'),
      command: z.string().min(1),
      args: z.array(z.string()).default([]),
      env: z.record(z.string()).default({}),
      cwd: z.string().optional(),
      ...replicaFields,
    })
    .strict(),
  z
    .object({
      transport: z.literal('embedded'),
      /** Which in-process server: the demo, or the conformance fixture server used by tests. */
      server: z.enum(['demo']).default('demo'),
      ...replicaFields,
    })
    .strict(),
]);
/** `id` and `draining` are declared by every transport through `replicaFields`. */
export type ReplicaConfig = z.infer<typeof ReplicaSchema> & { id?: string; draining?: boolean };

/** A replica once the configuration is loaded: its id is always set. */
export type ResolvedReplica = ReplicaConfig & { id: string };

/** How a service's sessions are placed on its replicas' hash ring. */
export const RoutingSchema = z
  .object({
    /**
     * What a session hashes: its client id (the default: one client's sessions share a replica),
     * its session id (spread evenly), or a request header captured when the session is created
     * (falling back to the client id when the header is absent).
     */
    key: z.enum(['client_id', 'session', 'header']).default('client_id'),
    /** The header for `key: header` (case-insensitive). */
    header: z
      .string()
      .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name')
      .transform((h) => h.toLowerCase())
      .optional(),
    /**
     * Consistent hashing with bounded loads: no replica takes a new session while it holds more
     * than `factor` × its weighted share of the service's live sessions. Off by default.
     */
    boundedLoads: z
      .union([z.literal(false), z.object({ factor: z.number().min(1).max(10).default(1.25) }).strict()])
      .default(false),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.key === 'header' && !r.header) {
      ctx.addIssue({ code: 'custom', path: ['header'], message: 'key "header" needs a header name' });
    }
  });
export type RoutingConfig = z.infer<typeof RoutingSchema>;

/** Circuit-breaker thresholds for a service's replicas (opossum). */
export const BreakerSchema = z
  .object({
    /** Failure percentage within the rolling window that opens a replica's breaker. */
    errorThresholdPercentage: int(1, 100).default(50),
    /** Outcomes needed in the window before the percentage counts. */
    volumeThreshold: int(1).default(5),
    /** How long an open breaker fails fast before a probe is let through (half-open). */
    resetTimeoutMs: int(100).default(10_000),
    /** Length of the rolling statistics window. */
    rollingWindowMs: int(1000).default(10_000),
  })
  .strict();

/**
 * Pool of shared upstream sessions per replica (pooled mode; generic-pool). Defaults: a few
 * sessions cover a pure tool server's concurrency on 2 cores, stdio children cost 20–30 MB
 * each, and one request per session keeps server→client requests attributable.
 */
export const PoolSchema = z
  .object({
    /** Upstream sessions kept open per replica even when idle. */
    min: int(0, 1000).default(0),
    /** Most upstream sessions (stdio: child processes) per replica. */
    max: int(1, 10_000).default(4),
    /** Requests that may queue for a free upstream session; more are refused at once (−31003). */
    maxWaitingClients: int(0).default(1000),
    /**
     * How long a queued request waits before it is refused with −31003 and retryAfterMs. It also
     * bounds starting a new upstream session (spawn + initialize): keep it above that, or set min ≥ 1.
     */
    acquireTimeoutMs: int(1).default(5000),
    /** An upstream session idle this long is closed, down to `min` (the min ones are kept, not recycled). */
    idleTimeoutMs: int(100).default(60_000),
    /** How often idle sessions are looked for. */
    evictionRunIntervalMs: int(0).default(10_000),
    /** Ping (MCP ping) an upstream session that sat idle before lending it out. */
    testOnBorrow: bool.default(true),
    /** Client requests one upstream session carries at once; 1 keeps sampling/elicitation attributable. */
    maxConcurrentPerConnection: int(1, 10_000).default(1),
  })
  .strict();
export type PoolConfig = z.infer<typeof PoolSchema>;

export const ServiceSchema = z
  .object({
    /**
     * dedicated: one upstream session per client session (stateful servers; the default).
     * pooled: client sessions share a pool of upstream sessions per replica (pure tool servers).
     */
    mode: z.enum(['dedicated', 'pooled']).default('dedicated'),
    /** Pool sizing for pooled mode (defaults from PoolSchema when absent). */
    pool: PoolSchema.optional(),
    /** Breaker thresholds for this service's replicas. */
    breaker: BreakerSchema.optional(),
    /** How sessions pick a replica (routing key, bounded loads). */
    routing: RoutingSchema.default({}),
    /** REPLICA_DRAIN_GRACE_MS for this service's sessions (calls in flight on a replica they left). */
    drainGraceMs: int(0).optional(),
    replicas: z.array(ReplicaSchema).min(1, 'a service needs at least one replica'),
  })
  .strict();
export type ServiceConfig = Omit<z.infer<typeof ServiceSchema>, 'replicas'> & {
  replicas: ResolvedReplica[];
};

/** The services of gateway.yaml, each replica given its stable id (explicit ids unique across the file). */
export const ServicesSchema = z
  .record(ServiceSchema)
  .default({})
  .transform((services, ctx) => assignReplicaIds(services, ctx));

export type AuthModeName = 'none' | 'api_key' | 'jwt' | 'oauth' | 'mtls';

/**
 * One client of gateway.yaml's `clients:` section. Other areas add their own per-client fields
 * (authorization patterns, rate limits), so unknown keys are kept, not refused.
 */
export const ClientSchema = z
  .object({
    /**
     * The client's API keys as `sha256:<64 hex>` digests of the key (several for rotation: the old
     * and the new key both work until the old one is removed). Plain keys are never stored.
     */
    apiKeys: z
      .array(z.string().regex(/^sha256:[0-9a-fA-F]{64}$/, 'use sha256:<64 hex digits> (the key digest)'))
      .default([]),
    /**
     * Token subjects (the AUTH_JWT_CLIENT_ID_CLAIM of a JWT or OAuth token) that are this client. With
     * a list, only these subjects are this client; with several AUTH_MODEs this is how a token joins an
     * API-key client (README "One client id per identity").
     */
    tokenSubjects: z.array(z.string().regex(CLIENT_NAME_PATTERN, 'not a valid client name')).optional(),
    /** Client certificate names (CN or SAN, per AUTH_MTLS_CLIENT_ID) that are this client; as tokenSubjects. */
    certificateNames: z.array(z.string().regex(CLIENT_NAME_PATTERN, 'not a valid client name')).optional(),
    /** A disabled client is refused on every transport (401), whatever credential it presents. */
    disabled: z.boolean().default(false),
    /** Rate limits and tool/resource/prompt rules (src/config/client-policy-schema.ts). */
    ...clientPolicyFields,
  })
  .strict();
/** As written in gateway.yaml (defaults optional), so overrides and S5 updates can name a subset. */
export type ClientConfig = z.input<typeof ClientSchema>;

export const FileSchema = z
  .object({
    defaultService: z.string().optional(),
    services: ServicesSchema,
    /** Clients: credentials, rate limits and authorization (`*`: every client without an entry; README "Security"). */
    clients: z
      .record(z.string().regex(CLIENT_KEY_PATTERN, 'not a valid client id'), ClientSchema)
      .default({})
      .superRefine((clients, ctx) => {
        for (const message of clientCredentialProblems(clients))
          ctx.addIssue({ code: z.ZodIssueCode.custom, message });
      }),
  })
  .strict();

export const EnvSchema = z.object({
  /** Interface to listen on. Loopback by default: exposing the gateway is a deliberate choice. */
  HOST: z.string().default('127.0.0.1'),
  /** TCP port (0 picks a free one). */
  PORT: int(0, 65535).default(3000),
  /** pino level: fatal, error, warn, info, debug, trace, silent. */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Path of gateway.yaml; when unset, the CLI (`npm start`) uses ./gateway.yaml if it exists. */
  GATEWAY_CONFIG: z.string().optional(),
  /** Watch gateway.yaml and apply valid edits to services and replicas live. */
  GATEWAY_CONFIG_WATCH: bool.default(true),
  /** Interval of the stat poll that backs up the file watch (fs.watch misses some editors and mounts); 0 = off. */
  GATEWAY_CONFIG_POLL_MS: int(0).default(2000),
  /** Bearer token of the admin API under /admin/; when unset the admin API is off (404). */
  ADMIN_TOKEN: z.string().min(16, 'use at least 16 characters').optional(),
  /** Largest accepted HTTP request body in bytes (larger → 413). */
  MAX_BODY_BYTES: int(1024).default(4 * 1024 * 1024),
  /**
   * Deepest nesting of arrays and objects accepted in a client message (a batch counts as one
   * level); deeper → −32600 (HTTP 400). Keeps every later JSON.stringify clear of stack overflow.
   */
  MAX_JSON_DEPTH: int(2, 100_000).default(64),
  /** Origins allowed to call the gateway from a browser, besides localhost ones while bound to loopback. */
  ALLOWED_ORIGINS: csv.default([]),
  /** Host header values accepted (DNS-rebinding protection); empty = loopback names while bound to loopback. */
  ALLOWED_HOSTS: csv.default([]),
  /** Peers (addresses or CIDR ranges) whose X-Forwarded-For/-Proto/-Host are believed; none by default. */
  TRUSTED_PROXIES: csv.default([]).superRefine((entries, ctx) => {
    for (const message of TrustedProxies.problems(entries))
      ctx.addIssue({ code: z.ZodIssueCode.custom, message });
  }),
  /**
   * A Streamable HTTP session with no live stream and no message for this long is ended
   * (Streamable HTTP clients hold no connection between POSTs, so only activity counts).
   */
  SESSION_IDLE_TIMEOUT_MS: int(1000).default(10 * 60 * 1000),
  /**
   * A WebSocket or legacy SSE session whose connection went away is ended after this long unless
   * the client reconnects and resumes (its resume window; well above the 5 s reconnect target).
   * Frees the session's upstream (a stdio child in dedicated mode) long before the idle timeout.
   */
  SESSION_DETACHED_TIMEOUT_MS: int(1000).default(60_000),
  /**
   * File-descriptor limit new sessions are admitted against; unset: the process's soft
   * RLIMIT_NOFILE (read once from /proc/self/limits). A new session past it gets 503 with
   * Retry-After (WebSocket: the upgrade is refused the same way) and the sessions held keep working.
   */
  SESSION_FD_LIMIT: int(1).optional(),
  /** Percent of the descriptor limit kept free for the sessions already held (reconnects, restarts). */
  SESSION_FD_HEADROOM_PERCENT: int(0, 90).default(10),
  /**
   * Failure percentage within the rolling window that opens a client transport's breaker
   * (Streamable HTTP, legacy SSE, WebSocket, each its own). Failures are the gateway's own:
   * internal errors and new sessions whose upstream could not be opened; successes are served
   * session creations. While open, new sessions on that transport get 503 / an upgrade refused.
   */
  CLIENT_BREAKER_ERROR_PERCENT: int(1, 100).default(50),
  /** Outcomes a client transport needs within the window before its failure percentage counts. */
  CLIENT_BREAKER_VOLUME: int(1).default(10),
  /** How long an open client-transport breaker refuses before it lets one new session through (half-open). */
  CLIENT_BREAKER_RESET_MS: int(100).default(10_000),
  /** Rolling statistics window of the client-transport breakers. */
  CLIENT_BREAKER_WINDOW_MS: int(1000).default(10_000),
  /** How often the one shared timer looks for idle sessions. */
  SESSION_SWEEP_INTERVAL_MS: int(100).default(5000),
  /**
   * Server→client messages a session keeps for resume. Clients rarely acknowledge, so a busy
   * session holds this many: it is the window a reconnecting client can still recover.
   */
  OUTBOX_MAX_MESSAGES: int(1).default(256),
  /** Bytes of server→client messages a session keeps for resume (also the slow-reader bound). */
  OUTBOX_MAX_BYTES: int(1024).default(1024 * 1024),
  /**
   * How long a message already written to a live connection stays in the outbox so a client
   * that reconnects can resume (clients rarely acknowledge). Longer than the 5 s reconnect target;
   * a resume from before a dropped message fails with −31006. Undelivered messages keep the bounds above.
   */
  OUTBOX_RESUME_WINDOW_MS: int(1000).default(30_000),
  /**
   * Bytes all sessions' outboxes may hold together. Past it, messages already delivered (kept only
   * for a resume) are dropped from the sessions idle the longest first, and counted.
   */
  OUTBOX_GLOBAL_MAX_BYTES: int(1024).default(256 * 1024 * 1024),
  /** Client requests a session may have waiting for the upstream. */
  MAX_IN_FLIGHT_PER_SESSION: int(1).default(256),
  /**
   * A request with no answer and no progress notification for this long is answered with
   * an upstream-timeout error and cancelled upstream (0: never). Checked by the idle sweep.
   */
  REQUEST_TIMEOUT_MS: int(0).default(5 * 60 * 1000),
  /** Completed request ids remembered per session for de-duplication of re-sent requests. */
  DEDUPE_WINDOW: int(1).default(1024),
  /** How long a completed request id is remembered for de-duplication (the window in time). */
  DEDUPE_WINDOW_MS: int(1000).default(60_000),
  /** `retry:` value (ms) sent on SSE streams so clients reconnect by themselves. */
  SSE_RETRY_MS: int(0).default(1000),
  /** Comment line sent on idle SSE streams so proxies keep them open (0 = off). */
  SSE_KEEPALIVE_MS: int(0).default(25_000),
  /** How long shutdown waits for streams to drain before closing them. */
  SHUTDOWN_GRACE_MS: int(0).default(5000),
  /** Timeout for an upstream HTTP request to answer its headers. */
  UPSTREAM_CONNECT_TIMEOUT_MS: int(100).default(10_000),
  /** First and largest delay between restarts of a stdio upstream / reconnects of a network one. */
  UPSTREAM_RETRY_MIN_MS: int(10).default(200),
  UPSTREAM_RETRY_MAX_MS: int(10).default(10_000),
  /** Restarts of a stdio upstream before the session is told it is gone. */
  UPSTREAM_MAX_RESTARTS: int(0).default(5),
  /**
   * A session that leaves its replica (drained, breaker opened, failed) keeps the old upstream
   * connection this long for the calls still in flight on it; calls not answered by then get
   * −31001 (or are sent again on the new replica when a repeat cannot have effects).
   */
  REPLICA_DRAIN_GRACE_MS: int(0).default(30_000),
  /** One shared ping interval for all WebSocket upstreams; one that missed the last pong is reconnected. */
  UPSTREAM_WS_HEARTBEAT_INTERVAL_MS: int(100).default(30_000),
  /** Largest frame accepted from a WebSocket upstream (larger → the connection is closed 1009 and re-opened). */
  UPSTREAM_WS_MAX_FRAME_BYTES: int(1024).default(64 * 1024 * 1024),
  /** Bytes buffered on a WebSocket upstream's socket past which further messages wait (bounded) for it to drain. */
  UPSTREAM_WS_HIGH_WATER_MARK_BYTES: int(1024).default(1024 * 1024),
  /** Serve the sessionless 2026-07-28 revision of Streamable HTTP. */
  ENABLE_2026_07_28: bool.default(true),
  /**
   * Hidden upstream sessions the 2026-07-28 bridge keeps (one per client and service); past it
   * the least recently used idle one is ended, and with none idle new clients get 503.
   */
  SESSIONLESS_MAX_BRIDGES: int(1).default(1000),
  /**
   * HMAC key of the requestState the 2026-07-28 bridge mints for multi-round-trip requests; unset:
   * a random key per process. Set the same key on every node of a cluster.
   */
  SESSIONLESS_STATE_KEY: z.string().min(32, 'use at least 32 characters').optional(),
  /**
   * How long a request answered with input_required waits for the client's retry (and its
   * requestState lives); then its upstream request is released with an error.
   */
  SESSIONLESS_INPUT_TTL_MS: int(100).default(60_000),
  /** Requests of one client that may wait for an input_required retry at once (more: 429). */
  SESSIONLESS_INPUT_MAX_PER_CLIENT: int(1).default(16),
  /** One shared ping interval for all WebSocket connections; a peer that missed the last pong is dropped. */
  WS_HEARTBEAT_INTERVAL_MS: int(100).default(30_000),
  /** Largest WebSocket frame accepted (larger → close 1009); defaults to MAX_BODY_BYTES. */
  WS_MAX_FRAME_BYTES: int(1024).optional(),
  /** permessage-deflate on WebSocket connections: off by default, it costs memory per connection. */
  WS_COMPRESSION: bool.default(false),
  /** Frames smaller than this are sent uncompressed even when compression is on. */
  WS_COMPRESSION_THRESHOLD_BYTES: int(0).default(1024),
  /** Bytes a client connection may have buffered before the session pauses its upstream. */
  CHANNEL_HIGH_WATER_MARK_BYTES: int(1024).default(1024 * 1024),
  /** PEM certificate (chain) file: when set with TLS_KEY_FILE, the one port speaks HTTPS and WSS. */
  TLS_CERT_FILE: z.string().optional(),
  /** PEM private key file. */
  TLS_KEY_FILE: z.string().optional(),
  /** PEM CA bundle used to verify client certificates. */
  TLS_CA_FILE: z.string().optional(),
  /** Client certificates: none, request (verify when sent) or require. */
  TLS_CLIENT_CERT: z.enum(['none', 'request', 'require']).default('none'),
  /** How often the certificate files are checked for a renewal (ms); a change is loaded without restart. */
  TLS_RELOAD_INTERVAL_MS: int(0).default(60_000),
  /** S2 anti-oscillation: transport switches allowed per client within the window. */
  S2_MAX_SWITCHES: int(0).default(3),
  /** S2 anti-oscillation window (ms). */
  S2_WINDOW_MS: int(1000).default(60_000),
  // ── settings: authentication, identity, S5 ──
  /**
   * How clients prove who they are: none, api_key, jwt, oauth, mtls, or a comma-separated list (any one
   * suffices). Unset: none on a loopback bind; on any other bind the gateway refuses to start.
   */
  AUTH_MODE: csv.pipe(z.array(z.enum(['none', 'api_key', 'jwt', 'oauth', 'mtls'])).min(1)).optional(),
  /** HS256 secret that signs client JWTs (jwt / oauth modes), at least 32 characters. */
  AUTH_JWT_SECRET: z.string().min(32, 'use at least 32 characters').optional(),
  /** JWKS URL with the RS/ES keys that sign client JWTs; fetched once, refetched on an unknown `kid`. */
  AUTH_JWKS_URL: z.string().url().optional(),
  /** After a JWKS fetch, how long before a token with an unknown `kid` may trigger another fetch (ms). */
  AUTH_JWKS_COOLDOWN_MS: int(0).default(30_000),
  /** Required `iss` of client JWTs (comma-separated for several). */
  AUTH_JWT_ISSUER: csv.optional(),
  /** Accepted `aud` values; unset in oauth mode: the gateway's canonical resource URL (RFC 8707). */
  AUTH_JWT_AUDIENCE: csv.optional(),
  /** Clock skew allowed on `exp` / `nbf` (seconds). */
  AUTH_JWT_CLOCK_TOLERANCE_S: int(0, 600).default(30),
  /** The JWT claim that names the client. */
  AUTH_JWT_CLIENT_ID_CLAIM: z.string().min(1).default('sub'),
  /** Scopes every token must carry (oauth / jwt modes); a token without one gets 403 insufficient_scope. */
  AUTH_REQUIRED_SCOPES: csv.default([]),
  /** Issuer URLs of the authorization servers named in the protected resource metadata (RFC 9728). */
  AUTH_AUTHORIZATION_SERVERS: csv.default([]),
  /** `scopes_supported` of the protected resource metadata; defaults to AUTH_REQUIRED_SCOPES. */
  AUTH_SCOPES_SUPPORTED: csv.optional(),
  /** Public base URL of the gateway (e.g. https://gw.example.com): the OAuth resource is <PUBLIC_URL>/mcp. */
  PUBLIC_URL: z.string().url().optional(),
  /** mtls mode: the client id is the certificate subject's CN, or its first DNS / URI SAN. */
  AUTH_MTLS_CLIENT_ID: z.enum(['cn', 'san']).default('cn'),
  /** Accept a WebSocket token in `?access_token=` (browsers; tokens in URLs end up in logs): off by default. */
  AUTH_WS_QUERY_TOKEN: bool.default(false),
  /** How long S5 (check_compliance, verify_identity) may take to answer before the default applies (ms). */
  S5_TIMEOUT_MS: int(1, 60_000).default(250),
  /** What an unanswered (timed-out or failed) S5 question counts as. */
  S5_DEFAULT_VERDICT: z.enum(['allow', 'deny']).default('allow'),
  // ── settings: rate limits and per-client authorization ──
  /** Per-client rate limits on every transport (on by default, whatever the authentication mode). */
  RATE_LIMIT_ENABLED: bool.default(true),
  /** Requests per second each client may send (token bucket refill rate); overridable per client in gateway.yaml. */
  RATE_LIMIT_PER_SECOND: z.coerce.number().min(0).max(1_000_000).default(100),
  /** Requests a client may send at once after a quiet spell (the bucket size); defaults to RATE_LIMIT_PER_SECOND. */
  RATE_LIMIT_BURST: int(1, 10_000_000).optional(),
  /** Redis shared by every gateway node: rate limits are then enforced cluster-wide (rate-limiter-flexible's Redis store). */
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
    .optional(),
  /** While Redis is unreachable: `open` = each node limits alone (in-memory insurance limiter), `closed` = refuse every request. */
  RATE_LIMIT_REDIS_FAIL_MODE: z.enum(['open', 'closed']).default('open'),
  /** How often each node reports what it granted to Redis and learns what the cluster has left (ms). */
  RATE_LIMIT_SYNC_MS: int(1, 10_000).default(50),
  // ── settings: flood protection and slow-request limits ──
  /** Live client connections, all addresses together (0: no cap; lowered to 90 % of the descriptor limit). */
  MAX_CONNECTIONS: int(0).default(50_000),
  /**
   * Live connections from one client address (0: no cap); a trusted proxy's own connections count
   * only globally. Default 1000, but off while bound to loopback (every client is this host), as
   * are the two per-address rates below unless set.
   */
  MAX_CONNECTIONS_PER_IP: int(0).optional(),
  /** New connections per second from one address (token bucket; 0: no limit). Default 100 (off on a loopback bind). */
  CONNECT_RATE_PER_IP: int(0).optional(),
  /** New connections one address may open at once before CONNECT_RATE_PER_IP applies. */
  CONNECT_BURST_PER_IP: int(1).default(200),
  /** New sessions per second from one client address (X-Forwarded-For only from TRUSTED_PROXIES; 0: no limit). Default 20 (off on a loopback bind). */
  SESSION_RATE_PER_IP: int(0).optional(),
  /** New sessions one address may open at once before SESSION_RATE_PER_IP applies. */
  SESSION_BURST_PER_IP: int(1).default(100),
  /** Live sessions one client id may hold (0: no cap). */
  MAX_SESSIONS_PER_CLIENT: int(0).default(100),
  /** A WebSocket or legacy SSE connection that has not sent initialize within this long is closed (0: never). */
  INIT_DEADLINE_MS: int(0).default(10_000),
  /** Time a connection has to send a complete request head (slowloris; also cuts connections that send nothing): 408. */
  HEADERS_TIMEOUT_MS: int(100).default(10_000),
  /** Time to receive a whole request, head and body (0: none; must not be below HEADERS_TIMEOUT_MS); responses and streams are not bounded by it. */
  HTTP_REQUEST_TIMEOUT_MS: int(0).default(30_000),
  /** Largest request head (request line and headers) in bytes; larger → 431. */
  MAX_HEADER_BYTES: int(1024, 1024 * 1024).default(16 * 1024),
  // ── settings: metrics and health ──
  /** Tool names (declared by upstreams in tools/list) that get their own tools/call latency series; the rest are "other". */
  METRICS_MAX_TOOL_LABELS: int(0).default(100),
  /** Event-loop delay (ms, p99 over the last few seconds) above which /health/live reports the process stuck. */
  HEALTH_MAX_EVENT_LOOP_LAG_MS: int(1).default(2000),
  /** Deprecated alias of REDIS_URL for readiness (/health/ready pings REDIS_URL; this only when REDIS_URL is unset). */
  HEALTH_REDIS_URL: z.string().optional(),
  // ── settings: tracing and logs ──
  /** OTLP/HTTP collector base URL (`/v1/traces` is appended); tracing is off while neither endpoint is set. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.string().url().optional(),
  /** OTLP/HTTP traces URL used as is (wins over OTEL_EXPORTER_OTLP_ENDPOINT). */
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.string().url().optional(),
  /** Fraction of new traces sampled (0–1), ParentBased(TraceIdRatioBased): a sampled caller's trace is always kept. */
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number().min(0).max(1).default(1),
  /** service.name of the gateway's spans. */
  OTEL_SERVICE_NAME: z.string().min(1).default('mcp-gateway'),
  /** OTLP/HTTP encoding of exported spans: `http/protobuf` (the OpenTelemetry default; smaller and cheaper to encode) or `http/json`. */
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: z.enum(['http/protobuf', 'http/json']).optional(),
  /** Same as OTEL_EXPORTER_OTLP_TRACES_PROTOCOL for every signal (the traces one wins). */
  OTEL_EXPORTER_OTLP_PROTOCOL: z.enum(['http/protobuf', 'http/json']).optional(),
  /** Most finished spans held for export; beyond it new spans are dropped (and counted by the SDK), never queued without bound. */
  OTEL_BSP_MAX_QUEUE_SIZE: int(1).default(8192),
  /** Spans per OTLP export request (at most the queue size). */
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: int(1).default(1024),
  /** Most time (ms) a finished span waits before its batch is exported. */
  OTEL_BSP_SCHEDULE_DELAY: int(1).default(1000),
  /** Log level per module, e.g. `Session=debug,StreamableHttp=warn` (others use LOG_LEVEL); changeable live via PUT /admin/log-levels; `Audit` cannot be set below info. */
  LOG_LEVELS: z
    .string()
    .default('')
    .refine((v) => parseLogLevels(v) !== undefined, 'must be Module=level pairs separated by commas')
    // Audit lines cannot be switched off (see AUDIT_FLOOR in telemetry/logging/log-levels.ts).
    .refine(
      (v) => !['warn', 'error', 'fatal', 'silent'].includes(parseLogLevels(v)?.Audit ?? 'info'),
      'Audit cannot be set below info (trace, debug or info): audit lines stay on',
    ),
  /** Log format: `pretty` (one readable line), `json`, or `auto` (pretty when stdout is a terminal). */
  LOG_FORMAT: z.enum(['auto', 'pretty', 'json']).default('auto'),
  // ── settings: dashboard, alerts and S4 ──
  /** How often the stats sampler behind /dashboard, the alerts and S4 takes a sample (ms). */
  STATS_SAMPLE_INTERVAL_MS: int(100).default(1000),
  /** Samples kept for the sliding windows (with the default interval: five minutes). */
  STATS_HISTORY_SAMPLES: int(10, 10_000).default(300),
  /** Serve /dashboard without ADMIN_TOKEN on a non-loopback bind (off: there it needs the token). */
  DASHBOARD_OPEN: bool.default(false),
  /** Alert: a pool's in-use share of its maximum above this (0–1). */
  ALERT_POOL_UTILISATION: z.coerce.number().min(0).max(1).default(0.9),
  /** Alert: errors per client message above this share (0–1) over ALERT_WINDOW_MS. */
  ALERT_ERROR_RATE: z.coerce.number().min(0).max(1).default(0.05),
  /** Alert: fewest client messages in the window before the error rate is judged. */
  ALERT_ERROR_RATE_MIN_MESSAGES: int(1).default(20),
  /** Alert: transport failovers within ALERT_WINDOW_MS above this count. */
  ALERT_FAILOVERS: int(0).default(10),
  /** Alert: p99 request latency over ALERT_WINDOW_MS above this (ms). */
  ALERT_P99_MS: int(1).default(500),
  /** Alert: V8 heap used / the heap's limit (heap_size_limit, set by --max-old-space-size) above this (0–1), held for ALERT_HEAP_FOR_MS. */
  ALERT_HEAP_USED: z.coerce.number().min(0).max(1).default(0.8),
  /** Alert: how long the heap must stay above its threshold before the alert is raised (ms). */
  ALERT_HEAP_FOR_MS: int(0).default(60_000),
  /** Alert: the sliding window of the error-rate, failover and p99 rules (ms). */
  ALERT_WINDOW_MS: int(1000).default(60_000),
  /** S4: how often gateway_metrics is published on s4_intelligence, and the usage-pattern window (ms). */
  S4_INTERVAL_MS: int(1000).default(10_000),
  /** S4: bursty when a client's busiest second is this many times its mean per second. */
  S4_BURST_RATIO: z.coerce.number().min(1).default(4),
  /** S4: tool-heavy when this share (0–1) of a client's requests are tools/call. */
  S4_TOOL_HEAVY_SHARE: z.coerce.number().min(0).max(1).default(0.8),
  /** S4: an anomaly is a window figure this many standard deviations above its moving average. */
  S4_ANOMALY_SIGMA: z.coerce.number().min(0.5).default(3),
  // ── settings: pool and upstream settings ──
  /**
   * Idle keep-alive sockets to HTTP upstreams are closed after this long: keep it below the
   * upstreams' own keep-alive (Node's default is 5 s) so a socket the server is closing is never reused.
   */
  UPSTREAM_HTTP_KEEPALIVE_MS: int(100).default(4000),
  /**
   * Sockets per HTTP upstream origin; 0 sizes them from the pooled services using the origin
   * (pool max × (2 + maxConcurrentPerConnection)) and leaves dedicated-mode origins unbounded.
   */
  UPSTREAM_HTTP_CONNECTIONS: int(0).default(0),
  /** Pre-spawned warm processes per stdio replica in dedicated mode, each used by one new session (0: off). */
  STDIO_WARM_PROCESSES: int(0, 64).default(2),
});
export type EnvConfig = z.infer<typeof EnvSchema>;

/** OpenTelemetry export, when an OTLP endpoint is configured. */
export interface TracingSettings {
  /** OTLP/HTTP traces URL. */
  tracesUrl: string;
  /** ParentBased(TraceIdRatioBased) ratio for new traces. */
  sampleRatio: number;
  serviceName: string;
  protocol: 'http/protobuf' | 'http/json';
  /** Batch span processor: finished spans held at most, spans per export, longest wait (ms). */
  maxQueueSize: number;
  maxExportBatchSize: number;
  scheduledDelayMs: number;
}

export interface GatewayConfig {
  host: string;
  port: number;
  logLevel: EnvConfig['LOG_LEVEL'];
  maxBodyBytes: number;
  /** Deepest JSON nesting accepted in a client message. */
  maxJsonDepth: number;
  allowedOrigins: string[];
  allowedHosts: string[];
  /** Peers whose X-Forwarded-* headers are believed (see src/policy/trusted-proxies.ts). */
  trustedProxies: string[];
  session: {
    idleTimeoutMs: number;
    detachedTimeoutMs: number;
    sweepIntervalMs: number;
    outboxMaxMessages: number;
    outboxMaxBytes: number;
    outboxResumeWindowMs: number;
    outboxGlobalMaxBytes: number;
    maxInFlight: number;
    dedupeWindow: number;
    dedupeWindowMs: number;
    requestTimeoutMs: number;
    /** undefined: the process's soft descriptor limit. */
    fdLimit: number | undefined;
    fdHeadroomPercent: number;
  };
  /** Thresholds of the one breaker per client transport (streamable, sse, ws). */
  clientBreaker: {
    errorThresholdPercentage: number;
    volumeThreshold: number;
    resetTimeoutMs: number;
    rollingWindowMs: number;
  };
  sse: { retryMs: number; keepAliveMs: number };
  shutdownGraceMs: number;
  upstream: {
    connectTimeoutMs: number;
    retryMinMs: number;
    retryMaxMs: number;
    maxRestarts: number;
    /** REPLICA_DRAIN_GRACE_MS: how long a left replica's connection is kept for the calls in flight on it. */
    drainGraceMs: number;
    wsHeartbeatIntervalMs: number;
    wsMaxFrameBytes: number;
    wsHighWaterMarkBytes: number;
  };
  enableSessionless: boolean;
  /** Hidden upstream sessions the 2026-07-28 bridge keeps at most. */
  sessionlessMaxBridges: number;
  /** Multi-round-trip requests on the 2026-07-28 bridge (input_required, requestState). */
  sessionlessInput: {
    /** HMAC key of the requestState; undefined: random per process. */
    stateKey: string | undefined;
    ttlMs: number;
    maxPerClient: number;
  };
  ws: {
    heartbeatIntervalMs: number;
    maxFrameBytes: number;
    compression: boolean;
    compressionThresholdBytes: number;
  };
  /** Buffered bytes per client channel before backpressure pauses the upstream. */
  channelHighWaterMarkBytes: number;
  /** Present when the gateway serves TLS. */
  tls:
    | {
        certFile: string;
        keyFile: string;
        caFile?: string;
        clientCert: 'none' | 'request' | 'require';
        reloadIntervalMs: number;
      }
    | undefined;
  s2: { maxSwitches: number; windowMs: number };
  /** The gateway.yaml the services came from (absent when none, or when they were passed in). */
  configFile: { path: string; watch: boolean; pollIntervalMs: number } | undefined;
  /** Admin API bearer token; the API is off without one. */
  admin: { token: string | undefined };
  defaultService: string;
  services: Record<string, ServiceConfig>;
  // ── settings: authentication, identity, S5 ──
  /** Authentication (see src/policy/identity.ts); `modes` undefined when AUTH_MODE was not set. */
  auth: {
    modes: AuthModeName[] | undefined;
    jwtSecret: string | undefined;
    jwksUrl: string | undefined;
    jwksCooldownMs: number;
    issuers: string[] | undefined;
    audiences: string[] | undefined;
    clockToleranceS: number;
    clientIdClaim: string;
    requiredScopes: string[];
    authorizationServers: string[];
    scopesSupported: string[] | undefined;
    publicUrl: string | undefined;
    mtlsClientId: 'cn' | 'san';
    wsQueryToken: boolean;
  };
  /** gateway.yaml's `clients:` section: API keys (`sha256:<hex>` digests), rate limits, tool/resource/prompt rules. */
  clients: Record<string, ClientConfig>;
  s5: { timeoutMs: number; defaultVerdict: 'allow' | 'deny' };
  // ── settings: rate limits and per-client authorization ──
  /** Default per-client rate limit and the shared (Redis) store. */
  rateLimit: {
    enabled: boolean;
    perSecond: number;
    burst: number;
    redisUrl: string | undefined;
    redisFailMode: 'open' | 'closed';
    syncIntervalMs: number;
  };
  // ── settings: flood protection and slow-request limits ──
  /** Connection and session flood limits (src/policy/flood) and the HTTP server's slow-request limits. */
  flood: FloodLimits & {
    headersTimeoutMs: number;
    requestTimeoutMs: number;
    maxHeaderBytes: number;
  };
  // ── settings: metrics and health ──
  /** Tool names with their own tools/call latency series (the rest count as "other"). */
  metricsMaxToolLabels: number;
  /** /health/live fails above this event-loop delay (ms). */
  healthMaxEventLoopLagMs: number;
  /** Redis pinged by /health/ready (REDIS_URL, else the deprecated HEALTH_REDIS_URL); undefined: no Redis check. */
  healthRedisUrl: string | undefined;
  /** True when healthRedisUrl came from the deprecated HEALTH_REDIS_URL (a warning at start-up). */
  healthRedisUrlDeprecated: boolean;
  // ── settings: tracing and logs ──
  /** OpenTelemetry tracing; undefined when no OTLP endpoint is configured (nothing is traced). */
  tracing: TracingSettings | undefined;
  /** Log level per module name (the Nest logger context), over `logLevel`. */
  logLevels: Record<string, LogLevelName>;
  logFormat: EnvConfig['LOG_FORMAT'];
  // ── settings: dashboard, alerts and S4 ──
  stats: { sampleIntervalMs: number; historySamples: number };
  dashboard: { open: boolean };
  alerts: {
    poolUtilisation: number;
    errorRate: number;
    errorRateMinMessages: number;
    failovers: number;
    p99Ms: number;
    heapUsed: number;
    heapForMs: number;
    windowMs: number;
  };
  s4: { intervalMs: number; burstRatio: number; toolHeavyShare: number; anomalySigma: number };
  // ── settings: pool and upstream settings ──
  /** Keep-alive and sizing of the undici pools per HTTP upstream origin. */
  upstreamHttp: { keepAliveMs: number; connections: number };
  /** Warm stdio children kept ready per replica in dedicated mode (0: spawn per session). */
  stdioWarmProcesses: number;
}

/** Overrides as tests and embedders pass them to bootstrap(): nested objects merge, services replace. */
export type GatewayConfigOverrides = {
  [K in Exclude<keyof GatewayConfig, 'services'>]?: GatewayConfig[K] extends unknown[]
    ? GatewayConfig[K]
    : GatewayConfig[K] extends object
      ? Partial<GatewayConfig[K]>
      : GatewayConfig[K];
} & { services?: Record<string, z.input<typeof ServiceSchema>> };
