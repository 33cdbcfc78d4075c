import { getHeapStatistics } from 'node:v8';
import { Inject, Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { PoolManager } from '../../pool/pool-manager.service';
import type { BreakerState } from '../../pool/replica-breakers';
import type { ChannelKind } from '../../session/client-channel';
import { CLIENT_TRANSPORTS } from '../../session/client-transport-guard';
import { ClientTransportGuardService } from '../../session/client-transport-guard.service';
import { SessionService } from '../../session/session.module';
import { VsmBus } from '../../vsm/vsm-bus.service';
import { GatewayMetrics, OTHER_LABEL } from '../../telemetry/gateway-metrics.service';
import { MCP_METHODS, METHOD_TOOLS_CALL } from '../../telemetry/mcp-methods';
import { pushHistogram, pushKeyed, ScrapeMetric, type Sample } from './scrape-metric';

/**
 * A counter GatewayMetrics keeps as a Map or a record of numbers by key, exported as one metric
 * family. Lanes that add such a counter add one line here; a `from->to` key becomes two labels.
 */
export interface KeyedCounter {
  field: string;
  name: string;
  help: string;
  labels: readonly [string] | readonly [string, string];
}

export const KEYED_COUNTERS: readonly KeyedCounter[] = [
  {
    field: 'rateLimited',
    name: 'mcp_gateway_rate_limited_total',
    help: 'Requests refused by a rate limit, by transport (admin: the admin API)',
    labels: ['transport'],
  },
  {
    field: 'authorizationDenied',
    name: 'mcp_gateway_authorization_denied_total',
    help: 'Tool, resource or prompt requests refused by per-client rules, by transport',
    labels: ['transport'],
  },
  {
    field: 'floodRefusals',
    name: 'mcp_gateway_flood_refusals_total',
    help: 'Connections and sessions refused by flood protection, by reason',
    labels: ['reason'],
  },
  {
    field: 'authRefusals',
    name: 'mcp_gateway_auth_refusals_total',
    help: 'Requests refused by authentication or admission, by reason',
    labels: ['reason'],
  },
  {
    field: 'authAdmissions',
    name: 'mcp_gateway_auth_admissions_total',
    help: 'Sessions admitted, by authentication mode',
    labels: ['mode'],
  },
  {
    field: 'errors',
    name: 'mcp_gateway_errors_total',
    help: 'Refused or failed client interactions, by kind',
    labels: ['kind'],
  },
  {
    field: 'internalErrors',
    name: 'mcp_gateway_internal_errors_total',
    help: 'Gateway failures caught by an error boundary, by entry point',
    labels: ['entry'],
  },
  {
    field: 'transportSwitches',
    name: 'mcp_gateway_transport_failovers_total',
    help: 'Sessions that moved from one client transport to another',
    labels: ['from', 'to'],
  },
  {
    field: 'replicaFailovers',
    name: 'mcp_gateway_replica_failovers_total',
    help: 'Sessions moved from one upstream replica to another',
    labels: ['from', 'to'],
  },
  {
    field: 'outboxDropped',
    name: 'mcp_gateway_outbox_dropped_total',
    help: 'Outbox entries dropped before acknowledgement, by reason',
    labels: ['reason'],
  },
  {
    field: 'outboxDroppedBytes',
    name: 'mcp_gateway_outbox_dropped_bytes_total',
    help: 'Bytes of outbox entries dropped before acknowledgement, by reason',
    labels: ['reason'],
  },
];

/**
 * GatewayMetrics fields exported by a dedicated metric below (not by the table or the fallback).
 * Any other field — a counter a lane added without a table line — is still exported, as
 * `mcp_gateway_<snake_case>_total` (with a `key` label for a Map or a record).
 */
const DEDICATED_FIELDS = new Set([
  'messagesIn',
  'messagesOut',
  'bytesIn',
  'bytesOut',
  'sessionsClosed',
  'requestLatency',
  'methodLatency',
  'toolLatency',
  'toolLatencyOther',
  'maxToolLabels',
  'upstreamLatency',
  'upstreamPauses',
  'upstreamResumes',
]);

/** Breaker state as a number: 0 closed, 1 half-open, 2 open. */
const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };

/** Node's default process metrics are process-wide: one registry for every gateway in the process. */
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/**
 * The /metrics exposition: Node's process metrics plus the gateway's, every value read at
 * scrape time from the plain counters the hot path bumps and from the live state of sessions,
 * pools and breakers. Labels are bounded by construction: transports, directions, MCP method
 * names, declared tool names (capped), replica ids from configuration, fixed kinds and reasons.
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();

  constructor(
    @Inject(GATEWAY_CONFIG) config: GatewayConfig,
    private readonly metrics: GatewayMetrics,
    private readonly sessions: SessionService,
    private readonly pool: PoolManager,
    private readonly transports: ClientTransportGuardService,
    private readonly vsm: VsmBus,
  ) {
    metrics.maxToolLabels = config.metricsMaxToolLabels;
    processMetrics();
    this.define();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  async exposition(): Promise<string> {
    const [process, gateway] = await Promise.all([processMetrics().metrics(), this.registry.metrics()]);
    return process + '\n' + gateway;
  }

  private add(name: string, help: string, type: ScrapeMetric['type'], read: (out: Sample[]) => void): void {
    this.registry.registerMetric(new ScrapeMetric(name, help, type, read) as never);
  }

  private define(): void {
    const m = this.metrics;
    const perTransport = (source: Record<ChannelKind, number>) => (out: Sample[]) => {
      for (const t of CLIENT_TRANSPORTS) out.push({ labels: { transport: t }, value: source[t] });
    };
    const inOut = (inbound: Record<ChannelKind, number>, outbound: Record<ChannelKind, number>) => {
      return (out: Sample[]) => {
        for (const t of CLIENT_TRANSPORTS) {
          out.push({ labels: { transport: t, direction: 'in' }, value: inbound[t] });
          out.push({ labels: { transport: t, direction: 'out' }, value: outbound[t] });
        }
      };
    };

    this.add(
      'mcp_gateway_connections',
      'Live client connections by transport (WebSocket connections, open SSE streams, Streamable HTTP sessions)',
      'gauge',
      (out) => {
        for (const t of CLIENT_TRANSPORTS)
          out.push({ labels: { transport: t }, value: this.transports.liveCount(t) });
      },
    );
    this.add(
      'mcp_gateway_sessions',
      'Live sessions by the client transport they are on now',
      'gauge',
      (out) => {
        const n: Record<ChannelKind, number> = { streamable: 0, sse: 0, ws: 0 };
        for (const s of this.sessions.all()) if (!s.closed) n[s.transport]++;
        perTransport(n)(out);
      },
    );
    this.add(
      'mcp_gateway_sessions_closed_total',
      'Sessions ended, by the client transport they were on',
      'counter',
      perTransport(m.sessionsClosed),
    );
    this.add(
      'mcp_gateway_messages_total',
      'JSON-RPC messages by client transport and direction (in: from clients, out: upstream messages delivered to clients)',
      'counter',
      inOut(m.messagesIn, m.messagesOut),
    );
    this.add(
      'mcp_gateway_message_bytes_total',
      'UTF-8 bytes of those messages (the JSON text, without transport framing)',
      'counter',
      inOut(m.bytesIn, m.bytesOut),
    );

    this.add(
      'mcp_server_operation_duration_seconds',
      'Client request to its response, by MCP method (and tool, for tools/call); OpenTelemetry mcp.server.operation.duration',
      'histogram',
      (out) => {
        for (let i = 0; i < MCP_METHODS.length; i++) {
          if (i === METHOD_TOOLS_CALL) continue;
          const snap = m.methodLatency[i].snapshot();
          if (snap.count > 0)
            pushHistogram(
              out,
              'mcp_server_operation_duration_seconds',
              { mcp_method_name: MCP_METHODS[i] },
              snap,
            );
        }
        // tools/call is split by tool (declared names, capped; the rest "other"): summing over
        // gen_ai_tool_name gives the method's total without a second series to double-count.
        const method = { mcp_method_name: 'tools/call' };
        for (const [tool, h] of m.toolLatency) {
          const snap = h.snapshot();
          if (snap.count > 0)
            pushHistogram(
              out,
              'mcp_server_operation_duration_seconds',
              { ...method, gen_ai_tool_name: tool },
              snap,
            );
        }
        const other = m.toolLatencyOther.snapshot();
        if (other.count > 0) {
          pushHistogram(
            out,
            'mcp_server_operation_duration_seconds',
            { ...method, gen_ai_tool_name: OTHER_LABEL },
            other,
          );
        }
      },
    );
    this.add(
      'mcp_gateway_request_duration_seconds',
      'Client request to its response, every method and transport together',
      'histogram',
      (out) => pushHistogram(out, 'mcp_gateway_request_duration_seconds', {}, m.requestLatency.snapshot()),
    );
    this.add(
      'mcp_gateway_upstream_duration_seconds',
      'Request written to an upstream replica to its answer, by replica',
      'histogram',
      (out) => {
        for (const [replica, h] of m.upstreamLatency) {
          pushHistogram(out, 'mcp_gateway_upstream_duration_seconds', { replica }, h.snapshot());
        }
      },
    );

    this.add(
      'mcp_gateway_breaker_state',
      'Circuit breaker of each upstream replica: 0 closed, 1 half-open, 2 open',
      'gauge',
      (out) => {
        for (const replica of this.pool.breakers.targets()) {
          out.push({ labels: { replica }, value: BREAKER_VALUE[this.pool.breakers.state(replica)] });
        }
      },
    );
    this.add(
      'mcp_gateway_transport_breaker_state',
      'Circuit breaker of each client transport: 0 closed, 1 half-open, 2 open',
      'gauge',
      (out) => {
        for (const t of CLIENT_TRANSPORTS)
          out.push({ labels: { transport: t }, value: BREAKER_VALUE[this.transports.state(t)] });
      },
    );

    const poolGauge = (
      name: string,
      help: string,
      pick: (p: ReturnType<PoolManager['poolStats']>[number]) => number,
    ) =>
      this.add(name, help, 'gauge', (out) => {
        for (const p of this.pool.poolStats()) out.push({ labels: { replica: p.replica }, value: pick(p) });
      });
    poolGauge(
      'mcp_gateway_pool_size',
      'Upstream sessions in the pool of a replica (pooled services)',
      (p) => p.size,
    );
    poolGauge('mcp_gateway_pool_in_use', 'Upstream sessions checked out of the pool', (p) => p.borrowed);
    poolGauge('mcp_gateway_pool_available', 'Idle upstream sessions in the pool', (p) => p.available);
    poolGauge(
      'mcp_gateway_pool_pending',
      'Requests waiting for an upstream session (queue depth)',
      (p) => p.pending,
    );
    poolGauge('mcp_gateway_pool_max', 'Largest size the pool may grow to', (p) => p.max);
    this.add(
      'mcp_gateway_upstream_connections',
      'Dedicated upstream connections open (one per session in dedicated mode)',
      'gauge',
      (out) => out.push({ labels: {}, value: this.pool.stats().open }),
    );

    this.add('mcp_gateway_outbox_bytes', 'Bytes held by every session outbox together', 'gauge', (out) =>
      out.push({ labels: {}, value: this.sessions.outboxBudget.bytes }),
    );
    this.add(
      'mcp_gateway_upstream_pauses_total',
      'Times a slow client made its session stop reading the upstream',
      'counter',
      (out) => out.push({ labels: {}, value: m.upstreamPauses }),
    );
    this.add(
      'mcp_gateway_upstream_resumes_total',
      'Times a paused session drained and read its upstream again',
      'counter',
      (out) => out.push({ labels: {}, value: m.upstreamResumes }),
    );
    this.add(
      'mcp_gateway_vsm_events_total',
      'Events the gateway put on each VSM channel ("variety flow"; s1_operations: every client message)',
      'counter',
      (out) => pushKeyed(out, this.vsm.events, ['channel']),
    );
    this.add(
      'mcp_gateway_vsm_commands_received_total',
      'Commands received on the VSM channels the gateway obeys (s3_control)',
      'counter',
      (out) => pushKeyed(out, this.vsm.received, ['channel']),
    );
    // prom-client reports the heap used and its current size, not how far it may grow: the
    // MemoryPressure rule (docker/prometheus/alerts.yml) divides used by this limit.
    this.add(
      'mcp_gateway_heap_size_limit_bytes',
      'Largest size the V8 heap may grow to (v8 heap_size_limit, --max-old-space-size)',
      'gauge',
      (out) => out.push({ labels: {}, value: getHeapStatistics().heap_size_limit }),
    );

    const fields = m as unknown as Record<string, unknown>;
    const claimed = new Set(DEDICATED_FIELDS);
    for (const counter of KEYED_COUNTERS) {
      claimed.add(counter.field);
      this.add(counter.name, counter.help, 'counter', (out) => {
        const source = fields[counter.field];
        if (isKeyed(source)) pushKeyed(out, source, counter.labels);
      });
    }
    // Whatever else GatewayMetrics holds is exported too, so a counter is never left out.
    for (const [field, value] of Object.entries(fields)) {
      if (claimed.has(field)) continue;
      const name = `mcp_gateway_${field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}_total`;
      if (typeof value === 'number') {
        this.add(name, `GatewayMetrics.${field}`, 'counter', (out) =>
          out.push({ labels: {}, value: fields[field] as number }),
        );
      } else if (isKeyed(value)) {
        this.add(name, `GatewayMetrics.${field}, by key`, 'counter', (out) =>
          pushKeyed(out, fields[field] as never, ['key']),
        );
      }
    }
  }
}

function isKeyed(value: unknown): value is ReadonlyMap<string, number> | Readonly<Record<string, number>> {
  if (value instanceof Map) return true;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  return Object.values(value).every((v) => typeof v === 'number');
}
