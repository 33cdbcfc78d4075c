import { getHeapStatistics } from 'node:v8';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import type { ClientTransport as ClientTransport } from '../../core/transport-kind';
import { discoverMarked } from '../../telemetry/discover-marked';
import { GAUGE_SOURCE, type GaugeSource } from '../../telemetry/gauge-source';
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
 * pools and breakers, which their layers declare as gauges (GAUGE_SOURCE, found at start-up).
 * Labels are bounded by construction: transports, directions, MCP method names, declared tool
 * names (capped), replica ids from configuration, fixed kinds and reasons.
 */
@Injectable()
export class MetricsService implements OnModuleInit {
  readonly registry = new Registry();

  constructor(
    @Inject(GATEWAY_CONFIG) config: GatewayConfig,
    private readonly metrics: GatewayMetrics,
    private readonly discovery?: DiscoveryService,
  ) {
    metrics.maxToolLabels = config.metricsMaxToolLabels;
    processMetrics();
    this.define();
  }

  /** Every provider marked GAUGE_SOURCE adds its gauges (the features report, ops only iterates). */
  onModuleInit(): void {
    if (!this.discovery) return;
    for (const source of discoverMarked<GaugeSource, void>(this.discovery, GAUGE_SOURCE)) {
      if (typeof source.gauges === 'function') this.addSource(source);
    }
  }

  /** Registers a source's gauges; a name registered twice fails at start-up, not at a scrape. */
  addSource(source: GaugeSource): void {
    for (const gauge of source.gauges())
      this.add(gauge.name, gauge.help, gauge.type, (out) => gauge.read(out));
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
    const perTransport = (source: Record<ClientTransport, number>) => (out: Sample[]) => {
      for (const t of transportsOf(source)) out.push({ labels: { transport: t }, value: source[t] });
    };
    const inOut = (inbound: Record<ClientTransport, number>, outbound: Record<ClientTransport, number>) => {
      return (out: Sample[]) => {
        for (const t of transportsOf(inbound)) {
          out.push({ labels: { transport: t, direction: 'in' }, value: inbound[t] });
          out.push({ labels: { transport: t, direction: 'out' }, value: outbound[t] });
        }
      };
    };

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

/** The client transports a per-transport record counts (GatewayMetrics keeps one key each). */
function transportsOf(record: Record<ClientTransport, number>): ClientTransport[] {
  return Object.keys(record) as ClientTransport[];
}

function isKeyed(value: unknown): value is ReadonlyMap<string, number> | Readonly<Record<string, number>> {
  if (value instanceof Map) return true;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  return Object.values(value).every((v) => typeof v === 'number');
}
