import { Inject, Injectable } from '@nestjs/common';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { StatsSampler, type StatsHistory } from './stats-sampler.service';
import { poolUtilisation, sumOf, type StatsSample } from './stats-sample';
import { ClientUsage } from '../../vsm/client-usage';
import { Baseline, closeWindow } from '../../vsm/s4-patterns';
import type { S4Event } from '../../vsm/vsm.channels';
import { VsmChannel } from '../../vsm/vsm.channels';
import { VsmBus } from '../../vsm/vsm-bus.service';

/** Smallest rises that count as anomalies whatever the baseline's spread (a flat baseline has σ 0). */
const ERROR_RATE_FLOOR = 0.02;
const P99_FLOOR_MS = 50;

/**
 * S4 (intelligence), fed by the stats sampler: every S4_INTERVAL_MS it reports the gateway's
 * figures (`gateway_metrics`), the clients whose usage changed class (`usage_pattern`) and the
 * figures that left their baseline (`anomaly_detected`). Pure apart from `publish`: tests step it
 * with `onSample` and their own samples.
 */
export class S4Analyst {
  private windowStart: number | undefined;
  private readonly errorRate: Baseline;
  private readonly p99: Baseline;

  constructor(
    private readonly settings: GatewayConfig['s4'],
    private readonly usage: ClientUsage,
    private readonly publish: (event: S4Event) => void,
  ) {
    this.errorRate = new Baseline(settings.anomalySigma, ERROR_RATE_FLOOR);
    this.p99 = new Baseline(settings.anomalySigma, P99_FLOOR_MS);
  }

  onSample(sample: StatsSample, history: StatsHistory): void {
    this.usage.readSecond();
    this.windowStart ??= sample.t;
    if (sample.t - this.windowStart < this.settings.intervalMs) return;
    this.windowStart = sample.t;
    const w = history.window(this.settings.intervalMs);
    if (!w) return;
    const stats = gatewayStats(sample, history, this.settings.intervalMs);
    this.publish({ type: 'gateway_metrics', stats });
    for (const change of closeWindow(this.usage, this.settings)) {
      this.publish({ type: 'usage_pattern', clientId: change.clientId, patternType: change.patternType });
    }
    const rate = w.errorRate;
    if (rate !== undefined) this.check('error_rate', rate, this.errorRate, sample.t);
    const p99 = w.quantile(0.99);
    if (p99 !== undefined) this.check('p99_ms', p99, this.p99, sample.t);
  }

  private check(figure: string, value: number, baseline: Baseline, at: number): void {
    const left = baseline.observe(value);
    if (left) {
      this.publish({
        type: 'anomaly_detected',
        details: {
          figure,
          value,
          baseline: left.mean,
          stdDev: left.stdDev,
          sigma: this.settings.anomalySigma,
          at,
        },
      });
    }
  }
}

/** The flat figures `gateway_metrics` carries (rates per second over the S4 window). */
export function gatewayStats(
  sample: StatsSample,
  history: StatsHistory,
  windowMs: number,
): Record<string, number> {
  const w = history.window(windowMs)!;
  const stats: Record<string, number> = {
    window_seconds: w.seconds,
    messages_in_per_second: w.rate((s) => sumOf(s.messagesIn)),
    messages_out_per_second: w.rate((s) => sumOf(s.messagesOut)),
    errors_per_second: w.rate((s) => s.errors),
    transport_failovers: w.transportFailovers,
    replica_failovers: sample.replicaFailovers - w.start.replicaFailovers,
    // Used against the limit the heap may grow to (as MemoryPressure reads it), not its current size.
    heap_used_ratio: sample.heap.limit > 0 ? sample.heap.used / sample.heap.limit : 0,
    pool_utilisation_max: Math.max(0, ...sample.pools.map(poolUtilisation)),
    pool_pending: sample.pools.reduce((n, p) => n + p.pending, 0),
    replicas_unhealthy: sample.replicas.filter((r) => r.state !== 'active').length,
  };
  for (const t of ['streamable', 'sse', 'ws'] as const) {
    stats[`connections_${t}`] = sample.connections[t];
    stats[`sessions_${t}`] = sample.sessions[t];
  }
  const rate = w.errorRate;
  if (rate !== undefined) stats.error_rate = rate;
  for (const [name, q] of [
    ['p50_ms', 0.5],
    ['p90_ms', 0.9],
    ['p99_ms', 0.99],
  ] as const) {
    const v = w.quantile(q);
    if (v !== undefined) stats[name] = v;
  }
  for (const channel of Object.keys(sample.vsm) as Array<keyof StatsSample['vsm']>) {
    stats[`vsm_${channel}_per_second`] = w.rate((s) => s.vsm[channel]);
  }
  return stats;
}

/** Wires S4Analyst to the sampler and the bus. */
@Injectable()
export class S4Intelligence {
  readonly analyst: S4Analyst;

  constructor(
    @Inject(GATEWAY_CONFIG) config: GatewayConfig,
    sampler: StatsSampler,
    usage: ClientUsage,
    vsm: VsmBus,
  ) {
    this.analyst = new S4Analyst(config.s4, usage, (event) => vsm.publish(VsmChannel.S4Intelligence, event));
    sampler.onSample((sample, history) => this.analyst.onSample(sample, history));
  }
}
