import { z } from 'zod';
import { parseLogLevels } from '../log-level-names';
import { int } from '../schema-fields';
import { setting } from './setting';

/** Metrics and health, tracing and logs. */
export const TELEMETRY_SETTINGS = {
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
};
