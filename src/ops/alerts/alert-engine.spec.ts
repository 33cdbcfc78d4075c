import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LatencyHistogram } from '../../telemetry/latency-histogram';
import { StatsHistory } from '../stats/stats-sampler.service';
import type { StatsSample } from '../stats/stats-sample';
import { AlertEngine, type AlertEvent } from './alert-engine';
import { alertRules, type AlertSettings } from './alert-rules';

const SETTINGS: AlertSettings = {
  poolUtilisation: 0.9,
  errorRate: 0.05,
  errorRateMinMessages: 20,
  failovers: 10,
  p99Ms: 500,
  heapUsed: 0.8,
  heapForMs: 60_000,
  windowMs: 60_000,
};

/** A gateway whose figures a test sets, sampled on a clock the test steps (1 s per step). */
class FakeGateway {
  now = 1_000_000;
  messages = 0;
  errors = 0;
  failovers = 0;
  borrowed = 0;
  heapUsed = 10;
  readonly latency = new LatencyHistogram();
  readonly history = new StatsHistory(300);
  readonly engine = new AlertEngine(alertRules(SETTINGS));
  readonly events: AlertEvent[] = [];

  step(seconds = 1, each?: () => void): AlertEvent[] {
    const out: AlertEvent[] = [];
    for (let i = 0; i < seconds; i++) {
      each?.();
      this.now += 1000;
      this.history.push(this.sample());
      out.push(...this.engine.evaluate(this.history, this.now));
    }
    this.events.push(...out);
    return out;
  }

  private sample(): StatsSample {
    const zero = { streamable: 0, sse: 0, ws: 0 };
    return {
      t: this.now,
      connections: zero,
      sessions: zero,
      messagesIn: { streamable: this.messages, sse: 0, ws: 0 },
      messagesOut: zero,
      bytesOut: zero,
      errors: this.errors,
      errorsByKind: {},
      transportFailovers: this.failovers,
      replicaFailovers: 0,
      latency: this.latency.snapshot(),
      pools: [
        {
          replica: 'r1',
          size: 10,
          available: 10 - this.borrowed,
          borrowed: this.borrowed,
          pending: 0,
          max: 10,
          min: 0,
        },
      ],
      transportBreakers: { streamable: 'closed', sse: 'closed', ws: 'closed' },
      replicas: [],
      vsm: {
        s1_operations: 0,
        s2_coordination: 0,
        s3_control: 0,
        s4_intelligence: 0,
        s5_policy: 0,
        algedonic: 0,
      },
      // V8 keeps the heap's current size just above what is used; the limit is what it may grow to.
      heap: { used: this.heapUsed, total: this.heapUsed + 2, limit: 100 },
    };
  }
}

const names = (events: AlertEvent[]) => events.map((e) => `${e.type} ${e.name}`);

describe('in-process alerts (stepped clock)', () => {
  test('PoolExhaustion: raised above 90 % in use, cleared at or below', () => {
    const g = new FakeGateway();
    g.borrowed = 9;
    assert.deepEqual(names(g.step()), []);
    g.borrowed = 10;
    const raised = g.step();
    assert.deepEqual(names(raised), ['raised PoolExhaustion']);
    assert.equal(raised[0].severity, 'critical');
    assert.equal(raised[0].subject, 'r1');
    assert.equal(raised[0].value, 1);
    assert.deepEqual(names(g.step(5)), [], 'raised once, not per sample');
    assert.equal(g.engine.active().length, 1);
    g.borrowed = 9;
    assert.deepEqual(names(g.step()), ['cleared PoolExhaustion']);
    assert.equal(g.engine.active().length, 0);
  });

  test('HighErrorRate: over 5 % of messages in the last minute; clears when the window slides past', () => {
    const g = new FakeGateway();
    // 10 messages/s, no errors: a minute of baseline.
    assert.deepEqual(names(g.step(60, () => (g.messages += 10))), []);
    // 10 s at 10 % errors: 10 errors over 600 messages in the window → 1.7 %, no alert yet.
    assert.deepEqual(names(g.step(10, () => ((g.messages += 10), (g.errors += 1)))), []);
    // Errors at 100 % for 3 s pushes the minute's share over 5 %.
    const raised = g.step(3, () => ((g.messages += 10), (g.errors += 10)));
    assert.deepEqual(names(raised), ['raised HighErrorRate']);
    assert.ok(raised[0].value! > 0.05);
    // Clean traffic: once the bad seconds leave the one-minute window the alert clears.
    const cleared = g.step(61, () => (g.messages += 10));
    assert.deepEqual(names(cleared), ['cleared HighErrorRate']);
    assert.ok(cleared[0].value! <= 0.05);
  });

  test('HighErrorRate is not judged below the minimum volume', () => {
    const g = new FakeGateway();
    assert.deepEqual(
      names(g.step(10, () => ((g.messages += 1), (g.errors += 1)))),
      [],
      '10 messages, all failed',
    );
  });

  test('TransportFailovers: more than 10 in a minute', () => {
    const g = new FakeGateway();
    g.failovers = 10;
    g.step(); // counted from the first sample on
    assert.deepEqual(
      names(g.step(5, () => (g.failovers += 2))),
      [],
      'ten in the window is not more than ten',
    );
    assert.deepEqual(names(g.step(1, () => (g.failovers += 1))), ['raised TransportFailovers']);
    assert.equal(g.events[0].severity, 'warning');
    assert.deepEqual(names(g.step(60)), ['cleared TransportFailovers']);
  });

  test('LatencyP99High: p99 over 500 ms in the window', () => {
    const g = new FakeGateway();
    g.step();
    assert.deepEqual(
      names(
        g.step(5, () => {
          for (let i = 0; i < 100; i++) g.latency.observe(20);
        }),
      ),
      [],
    );
    const raised = g.step(1, () => {
      for (let i = 0; i < 10; i++) g.latency.observe(2000);
    });
    assert.deepEqual(names(raised), ['raised LatencyP99High']);
    assert.ok(raised[0].value! > 500);
    assert.deepEqual(names(g.step(61, () => g.latency.observe(20))), ['cleared LatencyP99High']);
  });

  test('MemoryPressure: over 80 % heap held for a minute; a dip resets the wait', () => {
    const g = new FakeGateway();
    g.heapUsed = 85;
    assert.deepEqual(names(g.step(30)), []);
    g.heapUsed = 50;
    g.step();
    g.heapUsed = 85;
    assert.deepEqual(names(g.step(59)), [], 'the dip restarted the minute');
    assert.deepEqual(names(g.step(2)), ['raised MemoryPressure']);
    g.heapUsed = 80;
    assert.deepEqual(names(g.step()), ['cleared MemoryPressure']);
  });

  test('MemoryPressure: a heap whose current size follows its use is no alarm while far from its limit', () => {
    const g = new FakeGateway();
    g.heapUsed = 30; // 94 % of its current size, 30 % of its limit: an idle gateway
    assert.deepEqual(names(g.step(120)), []);
  });
});
