import type { z } from 'zod';
import type { FloodLimits } from '../core/limits';
import type { AuthModeName, EnvConfig } from './env-settings';
import type { ClientConfig } from './gateway-file-schema';
import type { LogLevelName } from './log-level-names';
import type { ServiceConfig, ServiceSchema } from './service-schema';

/**
 * The configuration the gateway runs with, as every layer reads it: the environment settings
 * (env-settings.ts) mapped into groups by load-config.ts, plus gateway.yaml's services and clients
 * (gateway-file-schema.ts). Leaf types that are enumerations are the declared settings' own types,
 * so a setting and the field it fills cannot drift apart.
 */

// The types the configuration is made of, for the layers that read it (one import path for them).
export type { AuthModeName, EnvConfig } from './env-settings';
export type { ClientConfig } from './gateway-file-schema';
export type { LogLevelName } from './log-level-names';
export type {
  PoolConfig,
  ReplicaConfig,
  ResolvedReplica,
  RoutingConfig,
  ServiceConfig,
} from './service-schema';

/** OpenTelemetry export, when an OTLP endpoint is configured. */
export interface TracingSettings {
  /** OTLP/HTTP traces URL. */
  tracesUrl: string;
  /** ParentBased(TraceIdRatioBased) ratio for new traces. */
  sampleRatio: number;
  serviceName: string;
  protocol: NonNullable<EnvConfig['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL']>;
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
        clientCert: EnvConfig['TLS_CLIENT_CERT'];
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
    mtlsClientId: EnvConfig['AUTH_MTLS_CLIENT_ID'];
    wsQueryToken: boolean;
  };
  /** gateway.yaml's `clients:` section: API keys (`sha256:<hex>` digests), rate limits, tool/resource/prompt rules. */
  clients: Record<string, ClientConfig>;
  s5: { timeoutMs: number; defaultVerdict: EnvConfig['S5_DEFAULT_VERDICT'] };
  // ── settings: rate limits and per-client authorization ──
  /** Default per-client rate limit and the shared (Redis) store. */
  rateLimit: {
    enabled: boolean;
    perSecond: number;
    burst: number;
    redisUrl: string | undefined;
    redisFailMode: EnvConfig['RATE_LIMIT_REDIS_FAIL_MODE'];
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
