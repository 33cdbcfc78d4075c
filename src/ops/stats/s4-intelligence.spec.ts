import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LatencyHistogram } from '../../telemetry/latency-histogram';
import { StatsHistory } from './stats-sampler.service';
import type { StatsSample } from './stats-sample';
import { ClientUsage } from '../../vsm/client-usage';
import { S4Analyst } from './s4-intelligence.service';
import { Baseline, classify } from '../../vsm/s4-patterns';
import type { S4Event } from '../../vsm/vsm.channels';

const SETTINGS = { intervalMs: 10_000, burstRatio: 4, toolHeavyShare: 0.8, anomalySigma: 3 };

describe('S4 usage classes', () => {
  const c = (requests: number, toolCalls: number, peakPerSecond: number, seconds = 10) =>
    classify({ requests, toolCalls, peakPerSecond, seconds }, SETTINGS);
  test('idle, steady, bursty, tool-heavy', () => {
    assert.equal(c(0, 0, 0), 'idle');
    assert.equal(c(100, 10, 12), 'steady');
    assert.equal(c(100, 10, 40), 'bursty', 'busiest second 4× the mean');
    assert.equal(c(100, 80, 10), 'tool_heavy');
    assert.equal(c(3, 3, 3), 'steady', 'too few requests to say more');
  });
});

describe('S4 baseline', () => {
  test('a value k·σ above the moving average is an anomaly, after the warm-up', () => {
    const b = new Baseline(3, 0.02);
    for (const x of [0.01, 0.012, 0.009, 0.011, 0.01, 0.01]) assert.equal(b.observe(x), undefined);
    const left = b.observe(0.3);
    assert.ok(left, 'spike reported');
    assert.ok(left.mean < 0.02);
    assert.equal(new Baseline(3, 0.02).observe(5), undefined, 'nothing during warm-up');
  });
});

/** Samples on a stepped clock (1 s per step): only the figures S4 reads are set. */
function sampler() {
  const history = new StatsHistory(300);
  const latency = new LatencyHistogram();
  const figures = { t: 0, messages: 0, errors: 0 };
  const sample = (): StatsSample => {
    const zero = { streamable: 0, sse: 0, ws: 0 };
    return {
      t: figures.t,
      connections: { streamable: 2, sse: 0, ws: 1 },
      sessions: zero,
      messagesIn: { streamable: figures.messages, sse: 0, ws: 0 },
      messagesOut: zero,
      bytesOut: zero,
      errors: figures.errors,
      errorsByKind: {},
      transportFailovers: 0,
      replicaFailovers: 0,
      latency: latency.snapshot(),
      pools: [],
      transportBreakers: { streamable: 'closed', sse: 'closed', ws: 'closed' },
      replicas: [],
      vsm: {
        s1_operations: figures.messages,
        s2_coordination: 0,
        s3_control: 0,
        s4_intelligence: 0,
        s5_policy: 0,
        algedonic: 0,
      },
      heap: { used: 1, total: 2, limit: 10 },
    };
  };
  return { history, latency, figures, sample };
}

describe('S4Analyst', () => {
  test('gateway_metrics every interval; usage_pattern when a client changes class; anomaly on an error spike', () => {
    const usage = new ClientUsage();
    const events: S4Event[] = [];
    const s4 = new S4Analyst(SETTINGS, usage, (e) => events.push(e));
    const { history, figures, sample, latency } = sampler();
    const second = (each: () => void) => {
      each();
      figures.t += 1000;
      const s = sample();
      history.push(s);
      s4.onSample(s, history);
    };
    const call = (client: string, method: string) => {
      usage.record(client, { jsonrpc: '2.0', id: 1, method, params: {} } as never);
      figures.messages++;
      latency.observe(5);
    };

    // Ten seconds of steady traffic from "alice", tool calls from "bob".
    second(() => undefined);
    for (let i = 0; i < 10; i++) {
      second(() => {
        for (let n = 0; n < 5; n++) call('alice', 'resources/read');
        call('bob', 'tools/call');
      });
    }
    const metrics = events.filter((e) => e.type === 'gateway_metrics');
    assert.equal(metrics.length, 1, 'one gateway_metrics after 10 s');
    const stats = (metrics[0] as { stats: Record<string, number> }).stats;
    assert.equal(stats.messages_in_per_second, 6);
    assert.equal(stats.connections_streamable, 2);
    assert.equal(stats.error_rate, 0);
    assert.ok(stats.p99_ms! > 0 && stats.p99_ms! <= 5);
    assert.equal(stats.vsm_s1_operations_per_second, 6);
    // The heap against the limit it may grow to (1 of 10), not its current size (1 of 2).
    assert.equal(stats.heap_used_ratio, 0.1);
    const patterns = () =>
      events
        .filter((e) => e.type === 'usage_pattern')
        .map((e) => `${(e as any).clientId}:${(e as any).patternType}`);
    assert.deepEqual(patterns(), ['alice:steady', 'bob:tool_heavy']);

    // Next window: alice sends everything in one second (bursty), bob goes quiet (idle).
    events.length = 0;
    for (let i = 0; i < 10; i++) {
      second(() => {
        if (i === 3) for (let n = 0; n < 50; n++) call('alice', 'resources/read');
        else call('alice', 'ping');
      });
    }
    assert.deepEqual(patterns(), ['alice:bursty', 'bob:idle']);

    // Windows of a clean 1 % error rate build the baseline; then a spike to 30 %.
    const window = (errorsPerSecond: number) => {
      for (let i = 0; i < 10; i++) {
        second(() => {
          for (let n = 0; n < 10; n++) call('alice', 'resources/read');
          figures.errors += errorsPerSecond;
        });
      }
    };
    for (let w = 0; w < 6; w++) window(0.1);
    assert.equal(events.filter((e) => e.type === 'anomaly_detected').length, 0, 'no anomaly at the baseline');
    window(3);
    const anomalies = events.filter((e) => e.type === 'anomaly_detected') as Array<{
      details: Record<string, any>;
    }>;
    assert.equal(anomalies.length, 1);
    assert.equal(anomalies[0].details.figure, 'error_rate');
    assert.ok(anomalies[0].details.value > 0.25);
  });
});
