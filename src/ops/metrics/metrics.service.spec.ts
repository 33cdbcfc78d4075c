import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { GatewayConfig } from '../../config/gateway-config';
import type { PoolManager } from '../../pool/pool-manager.service';
import { PoolReadout } from '../../pool/pool-readout';
import type { Router } from '../../routing/router.service';
import type { ClientTransportGuardService } from '../../session/client-transport-guard.service';
import { sessionGauges } from '../../session/session-readout';
import type { SessionService } from '../../session/session.module';
import type { VsmBus } from '../../vsm/vsm-bus.service';
import { VsmGauges } from '../../vsm/vsm-gauges';
import { GatewayMetrics } from '../../telemetry/gateway-metrics.service';
import { METHOD_TOOLS_CALL, methodIndex } from '../../telemetry/mcp-methods';
import { MetricsService } from './metrics.service';

/**
 * The gateway parts the collectors read, as plain objects with the figures a test sets, behind
 * the gauge sources those layers declare (found by GAUGE_SOURCE in the app).
 */
function service(metrics: GatewayMetrics, maxToolLabels = 100) {
  const pool = {
    breakers: { targets: () => ['r1', 'r2'], state: (id: string) => (id === 'r1' ? 'open' : 'half_open') },
    poolStats: () => [{ replica: 'p1', size: 4, available: 0, borrowed: 4, pending: 7, max: 4, min: 1 }],
    stats: () => ({ open: 3, pools: [] }),
    isolationCounts: () => ({
      unattributed: new Map([['sampling/createMessage', 2]]),
      refusedAnswers: new Map(),
    }),
  } as unknown as PoolManager;
  const sessions = {
    all: () =>
      [
        { transport: 'ws', closed: false },
        { transport: 'ws', closed: false },
      ][Symbol.iterator](),
    outboxBudget: { bytes: 1234 },
  } as unknown as SessionService;
  const transports = {
    liveCount: (t: string) => (t === 'ws' ? 2 : 0),
    state: () => 'closed',
  } as unknown as ClientTransportGuardService;
  const vsm = { events: { s1_operations: 5 }, received: { s3_control: 1 } } as unknown as VsmBus;
  const config = { metricsMaxToolLabels: maxToolLabels } as GatewayConfig;
  const svc = new MetricsService(config, metrics);
  svc.addSource(new PoolReadout(pool, {} as Router));
  svc.addSource({ gauges: () => sessionGauges(sessions, transports) });
  svc.addSource(new VsmGauges(vsm));
  return svc;
}

function line(text: string, series: string): number | undefined {
  const found = text.split('\n').find((l) => l.startsWith(`${series} `));
  return found === undefined ? undefined : Number(found.slice(series.length + 1));
}

describe('MetricsService', () => {
  test('reads pools, breakers, sessions and VSM counts at scrape time', async () => {
    const text = await service(new GatewayMetrics()).registry.metrics();
    assert.equal(line(text, 'mcp_gateway_breaker_state{replica="r1"}'), 2);
    assert.equal(line(text, 'mcp_gateway_breaker_state{replica="r2"}'), 1);
    assert.equal(line(text, 'mcp_gateway_pool_in_use{replica="p1"}'), 4);
    assert.equal(line(text, 'mcp_gateway_pool_pending{replica="p1"}'), 7);
    assert.equal(line(text, 'mcp_gateway_pool_max{replica="p1"}'), 4);
    assert.equal(line(text, 'mcp_gateway_upstream_connections'), 3);
    assert.equal(line(text, 'mcp_gateway_unattributed_messages_total{method="sampling/createMessage"}'), 2);
    assert.equal(line(text, 'mcp_gateway_sessions{transport="ws"}'), 2);
    assert.equal(line(text, 'mcp_gateway_connections{transport="ws"}'), 2);
    assert.equal(line(text, 'mcp_gateway_outbox_bytes'), 1234);
    assert.equal(line(text, 'mcp_gateway_vsm_events_total{channel="s1_operations"}'), 5);
  });

  test('a counter a lane adds to GatewayMetrics is exported without a table line', async () => {
    const metrics = new GatewayMetrics() as GatewayMetrics & {
      laneMapCounter: Map<string, number>;
      laneRecordCounter: Record<string, number>;
      laneNumber: number;
    };
    metrics.laneMapCounter = new Map([['client_bucket', 3]]);
    metrics.laneRecordCounter = { per_ip: 2, global: 0 };
    metrics.laneNumber = 4;
    const text = await service(metrics).registry.metrics();
    assert.equal(line(text, 'mcp_gateway_lane_map_counter_total{key="client_bucket"}'), 3);
    assert.equal(line(text, 'mcp_gateway_lane_record_counter_total{key="per_ip"}'), 2);
    assert.equal(line(text, 'mcp_gateway_lane_number_total'), 4);
    // Values are read at each scrape, not copied once.
    metrics.laneMapCounter.set('client_bucket', 10);
    const again = await service(metrics).registry.metrics();
    assert.equal(line(again, 'mcp_gateway_lane_map_counter_total{key="client_bucket"}'), 10);
  });

  test('tools/call latency: declared tools up to the cap, the rest "other"; failovers as from/to', async () => {
    const metrics = new GatewayMetrics();
    const svc = service(metrics, 2);
    metrics.learnTools({ tools: [{ name: 'a' }, { name: 'b' }, { name: 'c' }, { name: 42 }] });
    for (const tool of ['a', 'b', 'c', undefined]) metrics.requestCompleted(METHOD_TOOLS_CALL, tool, 3);
    metrics.requestCompleted(methodIndex('ping'), undefined, 0.5);
    metrics.requestCompleted(methodIndex('vendor/custom'), undefined, 20);
    metrics.replicaFailover('r1', 'r2');
    const text = await svc.registry.metrics();
    const op = 'mcp_server_operation_duration_seconds';
    assert.equal(line(text, `${op}_count{mcp_method_name="tools/call",gen_ai_tool_name="a"}`), 1);
    assert.equal(line(text, `${op}_count{mcp_method_name="tools/call",gen_ai_tool_name="b"}`), 1);
    assert.equal(line(text, `${op}_count{mcp_method_name="tools/call",gen_ai_tool_name="other"}`), 2);
    assert.equal(line(text, `${op}_count{mcp_method_name="ping"}`), 1);
    assert.equal(line(text, `${op}_bucket{mcp_method_name="ping",le="0.001"}`), 1);
    assert.equal(line(text, `${op}_count{mcp_method_name="other"}`), 1);
    assert.equal(line(text, `${op}_bucket{mcp_method_name="other",le="0.01"}`), 0);
    assert.equal(line(text, `${op}_bucket{mcp_method_name="other",le="0.025"}`), 1);
    assert.equal(line(text, 'mcp_gateway_request_duration_seconds_count'), 6);
    assert.equal(line(text, 'mcp_gateway_replica_failovers_total{from="r1",to="r2"}'), 1);
  });
});
