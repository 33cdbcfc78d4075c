import { z } from 'zod';
import { bool, int } from './schema-fields';
import { UPSTREAM_KINDS } from './upstream-kinds';

/**
 * One service of gateway.yaml: how its sessions reach its replicas (mode, pool, breaker, routing).
 * The services map, with each replica's id resolved, is in gateway-file-schema.ts.
 */

/** One upstream replica: a URL for network transports, a command for stdio (src/config/upstream-kinds.ts). */
export const ReplicaSchema = z.discriminatedUnion('transport', [...UPSTREAM_KINDS]);
/** `id` and `draining` are declared by every upstream kind (`replicaFields` in upstream-kinds.ts). */
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
