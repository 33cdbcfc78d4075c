import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { isLoopbackHost } from '../core/loopback';
import type { ZodError } from 'zod';
import { EnvSchema } from './env-settings';
import type { ClientConfig, GatewayConfig, GatewayConfigOverrides, ServiceConfig } from './gateway-config';
import { FileSchema, ServicesSchema } from './gateway-file-schema';
import { parseLogLevels } from './log-level-names';

/** Thrown with every problem found, one per line, so an operator fixes them all at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid gateway configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export const DEMO_SERVICE = 'demo';

/**
 * @param defaultFile read when GATEWAY_CONFIG is unset and the file exists. Only the CLI entry
 *   (main.ts) passes `gateway.yaml`: a file in a developer's working directory must not change
 *   what tests and embedders get.
 */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  overrides: GatewayConfigOverrides = {},
  defaultFile?: string,
): GatewayConfig {
  const problems: string[] = [];
  const envResult = EnvSchema.safeParse(stripEmpty(env));
  if (!envResult.success) problems.push(...describe(envResult.error, 'env '));

  let file: {
    defaultService?: string;
    services: Record<string, ServiceConfig>;
    clients?: Record<string, ClientConfig>;
  } = { services: {} };
  const path = env.GATEWAY_CONFIG ?? (defaultFile && existsSync(defaultFile) ? defaultFile : undefined);
  if (path && !overrides.services) {
    try {
      const parsed = FileSchema.safeParse(parseYaml(readFileSync(resolve(path), 'utf8')) ?? {});
      if (parsed.success) file = parsed.data;
      else problems.push(...describe(parsed.error, `${path}: `));
    } catch (err) {
      problems.push(`${path}: ${(err as Error).message}`);
    }
  }
  const e = envResult.data;
  // Checked on the raw values so file problems are listed even when other variables are invalid.
  if (Boolean(env.TLS_CERT_FILE) !== Boolean(env.TLS_KEY_FILE)) {
    problems.push('env TLS_CERT_FILE and TLS_KEY_FILE: set both or neither');
  }
  for (const key of ['TLS_CERT_FILE', 'TLS_KEY_FILE', 'TLS_CA_FILE'] as const) {
    const file = env[key];
    if (file && !existsSync(file)) problems.push(`env ${key}: file "${file}" does not exist`);
  }
  if (problems.length > 0 || !e) throw new ConfigError(problems);

  let services = file.services;
  if (overrides.services) {
    const parsed = FileSchema.shape.services.safeParse(overrides.services);
    if (!parsed.success) throw new ConfigError(describe(parsed.error, 'services.'));
    services = parsed.data;
  }
  const finalServices = servicesOrDemo(services);
  const defaultService = overrides.defaultService ?? file.defaultService ?? Object.keys(finalServices)[0];
  if (!finalServices[defaultService]) {
    throw new ConfigError([`defaultService "${defaultService}" is not one of the declared services`]);
  }

  const config: GatewayConfig = {
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    maxBodyBytes: e.MAX_BODY_BYTES,
    maxJsonDepth: e.MAX_JSON_DEPTH,
    allowedOrigins: e.ALLOWED_ORIGINS,
    allowedHosts: e.ALLOWED_HOSTS,
    trustedProxies: e.TRUSTED_PROXIES,
    session: {
      idleTimeoutMs: e.SESSION_IDLE_TIMEOUT_MS,
      detachedTimeoutMs: e.SESSION_DETACHED_TIMEOUT_MS,
      sweepIntervalMs: e.SESSION_SWEEP_INTERVAL_MS,
      outboxMaxMessages: e.OUTBOX_MAX_MESSAGES,
      outboxMaxBytes: e.OUTBOX_MAX_BYTES,
      outboxResumeWindowMs: e.OUTBOX_RESUME_WINDOW_MS,
      outboxGlobalMaxBytes: e.OUTBOX_GLOBAL_MAX_BYTES,
      maxInFlight: e.MAX_IN_FLIGHT_PER_SESSION,
      dedupeWindow: e.DEDUPE_WINDOW,
      dedupeWindowMs: e.DEDUPE_WINDOW_MS,
      requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
      fdLimit: e.SESSION_FD_LIMIT,
      fdHeadroomPercent: e.SESSION_FD_HEADROOM_PERCENT,
    },
    clientBreaker: {
      errorThresholdPercentage: e.CLIENT_BREAKER_ERROR_PERCENT,
      volumeThreshold: e.CLIENT_BREAKER_VOLUME,
      resetTimeoutMs: e.CLIENT_BREAKER_RESET_MS,
      rollingWindowMs: e.CLIENT_BREAKER_WINDOW_MS,
    },
    sse: { retryMs: e.SSE_RETRY_MS, keepAliveMs: e.SSE_KEEPALIVE_MS },
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    upstream: {
      connectTimeoutMs: e.UPSTREAM_CONNECT_TIMEOUT_MS,
      retryMinMs: e.UPSTREAM_RETRY_MIN_MS,
      retryMaxMs: e.UPSTREAM_RETRY_MAX_MS,
      maxRestarts: e.UPSTREAM_MAX_RESTARTS,
      drainGraceMs: e.REPLICA_DRAIN_GRACE_MS,
      wsHeartbeatIntervalMs: e.UPSTREAM_WS_HEARTBEAT_INTERVAL_MS,
      wsMaxFrameBytes: e.UPSTREAM_WS_MAX_FRAME_BYTES,
      wsHighWaterMarkBytes: e.UPSTREAM_WS_HIGH_WATER_MARK_BYTES,
    },
    enableSessionless: e.ENABLE_2026_07_28,
    sessionlessMaxBridges: e.SESSIONLESS_MAX_BRIDGES,
    sessionlessInput: {
      stateKey: e.SESSIONLESS_STATE_KEY,
      ttlMs: e.SESSIONLESS_INPUT_TTL_MS,
      maxPerClient: e.SESSIONLESS_INPUT_MAX_PER_CLIENT,
    },
    ws: {
      heartbeatIntervalMs: e.WS_HEARTBEAT_INTERVAL_MS,
      maxFrameBytes: e.WS_MAX_FRAME_BYTES ?? e.MAX_BODY_BYTES,
      compression: e.WS_COMPRESSION,
      compressionThresholdBytes: e.WS_COMPRESSION_THRESHOLD_BYTES,
    },
    channelHighWaterMarkBytes: e.CHANNEL_HIGH_WATER_MARK_BYTES,
    tls:
      e.TLS_CERT_FILE && e.TLS_KEY_FILE
        ? {
            certFile: e.TLS_CERT_FILE,
            keyFile: e.TLS_KEY_FILE,
            caFile: e.TLS_CA_FILE,
            clientCert: e.TLS_CLIENT_CERT,
            reloadIntervalMs: e.TLS_RELOAD_INTERVAL_MS,
          }
        : undefined,
    s2: { maxSwitches: e.S2_MAX_SWITCHES, windowMs: e.S2_WINDOW_MS },
    configFile:
      path && !overrides.services
        ? { path: resolve(path), watch: e.GATEWAY_CONFIG_WATCH, pollIntervalMs: e.GATEWAY_CONFIG_POLL_MS }
        : undefined,
    admin: { token: e.ADMIN_TOKEN },
    // ── settings: authentication, identity, S5 ──
    auth: {
      modes: e.AUTH_MODE,
      jwtSecret: e.AUTH_JWT_SECRET,
      jwksUrl: e.AUTH_JWKS_URL,
      jwksCooldownMs: e.AUTH_JWKS_COOLDOWN_MS,
      issuers: e.AUTH_JWT_ISSUER,
      audiences: e.AUTH_JWT_AUDIENCE,
      clockToleranceS: e.AUTH_JWT_CLOCK_TOLERANCE_S,
      clientIdClaim: e.AUTH_JWT_CLIENT_ID_CLAIM,
      requiredScopes: e.AUTH_REQUIRED_SCOPES,
      authorizationServers: e.AUTH_AUTHORIZATION_SERVERS,
      scopesSupported: e.AUTH_SCOPES_SUPPORTED,
      publicUrl: e.PUBLIC_URL?.replace(/\/+$/, ''),
      mtlsClientId: e.AUTH_MTLS_CLIENT_ID,
      wsQueryToken: e.AUTH_WS_QUERY_TOKEN,
    },
    clients: file.clients ?? {},
    s5: { timeoutMs: e.S5_TIMEOUT_MS, defaultVerdict: e.S5_DEFAULT_VERDICT },
    // ── settings: rate limits and per-client authorization ──
    rateLimit: {
      enabled: e.RATE_LIMIT_ENABLED,
      perSecond: e.RATE_LIMIT_PER_SECOND,
      burst: e.RATE_LIMIT_BURST ?? Math.max(1, Math.ceil(e.RATE_LIMIT_PER_SECOND)),
      redisUrl: e.REDIS_URL,
      redisFailMode: e.RATE_LIMIT_REDIS_FAIL_MODE,
      syncIntervalMs: e.RATE_LIMIT_SYNC_MS,
    },
    // ── settings: flood protection and slow-request limits ──
    flood: {
      maxConnections: e.MAX_CONNECTIONS,
      // On a loopback bind every client has a loopback address: per-address limits would only
      // limit the host itself (tests, benches, a local IDE with many windows). Explicit values win.
      maxConnectionsPerIp: e.MAX_CONNECTIONS_PER_IP ?? (isLoopbackHost(e.HOST.toLowerCase()) ? 0 : 1000),
      connectRatePerIp: e.CONNECT_RATE_PER_IP ?? (isLoopbackHost(e.HOST.toLowerCase()) ? 0 : 100),
      connectBurstPerIp: e.CONNECT_BURST_PER_IP,
      sessionRatePerIp: e.SESSION_RATE_PER_IP ?? (isLoopbackHost(e.HOST.toLowerCase()) ? 0 : 20),
      sessionBurstPerIp: e.SESSION_BURST_PER_IP,
      maxSessionsPerClient: e.MAX_SESSIONS_PER_CLIENT,
      initDeadlineMs: e.INIT_DEADLINE_MS,
      headersTimeoutMs: e.HEADERS_TIMEOUT_MS,
      // Node cuts on whichever comes first; a request timeout below the headers timeout would hide it.
      requestTimeoutMs:
        e.HTTP_REQUEST_TIMEOUT_MS === 0 ? 0 : Math.max(e.HTTP_REQUEST_TIMEOUT_MS, e.HEADERS_TIMEOUT_MS),
      maxHeaderBytes: e.MAX_HEADER_BYTES,
    },
    // ── settings: metrics and health ──
    metricsMaxToolLabels: e.METRICS_MAX_TOOL_LABELS,
    healthMaxEventLoopLagMs: e.HEALTH_MAX_EVENT_LOOP_LAG_MS,
    // One Redis for the cluster: readiness checks the one the rate limiter uses.
    healthRedisUrl: e.REDIS_URL ?? e.HEALTH_REDIS_URL,
    healthRedisUrlDeprecated: e.REDIS_URL === undefined && e.HEALTH_REDIS_URL !== undefined,
    // ── settings: tracing and logs ──
    tracing:
      e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || e.OTEL_EXPORTER_OTLP_ENDPOINT
        ? {
            tracesUrl:
              e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
              `${e.OTEL_EXPORTER_OTLP_ENDPOINT!.replace(/\/+$/, '')}/v1/traces`,
            sampleRatio: e.OTEL_TRACES_SAMPLER_ARG,
            serviceName: e.OTEL_SERVICE_NAME,
            protocol:
              e.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? e.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf',
            maxQueueSize: e.OTEL_BSP_MAX_QUEUE_SIZE,
            maxExportBatchSize: Math.min(e.OTEL_BSP_MAX_EXPORT_BATCH_SIZE, e.OTEL_BSP_MAX_QUEUE_SIZE),
            scheduledDelayMs: e.OTEL_BSP_SCHEDULE_DELAY,
          }
        : undefined,
    logLevels: parseLogLevels(e.LOG_LEVELS) ?? {},
    logFormat: e.LOG_FORMAT,
    // ── settings: dashboard, alerts and S4 ──
    stats: { sampleIntervalMs: e.STATS_SAMPLE_INTERVAL_MS, historySamples: e.STATS_HISTORY_SAMPLES },
    dashboard: { open: e.DASHBOARD_OPEN },
    alerts: {
      poolUtilisation: e.ALERT_POOL_UTILISATION,
      errorRate: e.ALERT_ERROR_RATE,
      errorRateMinMessages: e.ALERT_ERROR_RATE_MIN_MESSAGES,
      failovers: e.ALERT_FAILOVERS,
      p99Ms: e.ALERT_P99_MS,
      heapUsed: e.ALERT_HEAP_USED,
      heapForMs: e.ALERT_HEAP_FOR_MS,
      windowMs: e.ALERT_WINDOW_MS,
    },
    s4: {
      intervalMs: e.S4_INTERVAL_MS,
      burstRatio: e.S4_BURST_RATIO,
      toolHeavyShare: e.S4_TOOL_HEAVY_SHARE,
      anomalySigma: e.S4_ANOMALY_SIGMA,
    },
    // ── settings: pool and upstream settings ──
    upstreamHttp: { keepAliveMs: e.UPSTREAM_HTTP_KEEPALIVE_MS, connections: e.UPSTREAM_HTTP_CONNECTIONS },
    stdioWarmProcesses: e.STDIO_WARM_PROCESSES,
    defaultService,
    services: finalServices,
  };
  return applyOverrides(config, overrides);
}

/** The services part of gateway.yaml, validated. */
export interface ServicesFile {
  defaultService?: string;
  services: Record<string, ServiceConfig>;
}

/** The embedded demo upstream, served as "demo" when no service is declared. */
function demoServices(): Record<string, ServiceConfig> {
  return ServicesSchema.parse({ [DEMO_SERVICE]: { replicas: [{ transport: 'embedded', server: 'demo' }] } });
}

export type ServicesFileResult = { ok: true; file: ServicesFile } | { ok: false; problems: string[] };

/**
 * Validates the text of gateway.yaml on every edit while the gateway runs, with the schema that
 * start-up uses, so a live edit is held to the same rules. Every problem is listed; `path` names
 * the file in them.
 */
export function parseServicesFile(path: string, text: string): ServicesFileResult {
  try {
    const parsed = FileSchema.safeParse(parseYaml(text) ?? {});
    if (!parsed.success) return { ok: false, problems: describe(parsed.error, `${path}: `) };
    return { ok: true, file: parsed.data };
  } catch (err) {
    // YAML syntax errors span several lines (a code frame): the first one says what and where.
    return { ok: false, problems: [`${path}: ${(err as Error).message.split('\n')[0]}`] };
  }
}

/** Services for a (re)loaded file: the demo when it declares none, as at start-up. */
export function servicesOrDemo(services: Record<string, ServiceConfig>): Record<string, ServiceConfig> {
  return Object.keys(services).length > 0 ? services : demoServices();
}

function applyOverrides(config: GatewayConfig, overrides: GatewayConfigOverrides): GatewayConfig {
  const out: Record<string, unknown> = { ...config };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined || k === 'services' || k === 'defaultService') continue;
    const base = (config as unknown as Record<string, unknown>)[k];
    out[k] =
      base && typeof base === 'object' && !Array.isArray(base) && typeof v === 'object' && !Array.isArray(v)
        ? { ...base, ...v }
        : v;
  }
  return out as unknown as GatewayConfig;
}

function stripEmpty(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') out[k] = v;
  return out;
}

function describe(error: ZodError, prefix: string): string[] {
  return error.issues.map((i) => `${prefix}${i.path.join('.') || '(root)'}: ${i.message}`);
}
