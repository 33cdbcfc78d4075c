import type { ClientTransport as ClientTransport } from '../../core/transport-kind';
import { histogramDelta, quantileMs, type HistogramSnapshot } from '../../telemetry/latency-histogram';
import type { BreakerPosition, PoolFigures, ReplicaFigures } from '../../telemetry/stats-source';
import type { VsmChannelName } from '../../vsm/vsm.channels';

/**
 * One reading of the gateway's figures, taken once per sample interval. Counters are cumulative
 * (as the hot path keeps them); rates and windowed quantiles are differences of two samples.
 * Connections, sessions, pools, breakers and replicas come from the layers that own them
 * (STATS_SOURCE providers).
 */
export interface StatsSample {
  /** Epoch ms. */
  t: number;
  connections: Record<ClientTransport, number>;
  sessions: Record<ClientTransport, number>;
  messagesIn: Record<ClientTransport, number>;
  messagesOut: Record<ClientTransport, number>;
  bytesOut: Record<ClientTransport, number>;
  /** Refused or failed client interactions plus internal errors, all kinds together. */
  errors: number;
  errorsByKind: Record<string, number>;
  transportFailovers: number;
  replicaFailovers: number;
  latency: HistogramSnapshot;
  pools: PoolFigures[];
  transportBreakers: Record<ClientTransport, BreakerPosition>;
  replicas: ReplicaHealth[];
  vsm: Record<VsmChannelName, number>;
  heap: { used: number; total: number; limit: number };
}

export type ReplicaHealth = ReplicaFigures;

export type ChannelCounts = Record<ClientTransport, number>;

export function sumOf(record: Readonly<Record<string, number>>): number {
  let n = 0;
  for (const k in record) n += record[k];
  return n;
}

/** Latest sample and what changed over a window ending at it: what alerts, S4 and the dashboard read. */
export class StatsWindow {
  constructor(
    readonly latest: StatsSample,
    /** The oldest sample inside the window (the latest itself when there is only one). */
    readonly start: StatsSample,
  ) {}

  get seconds(): number {
    return Math.max((this.latest.t - this.start.t) / 1000, 0);
  }

  get messagesIn(): number {
    return sumOf(this.latest.messagesIn) - sumOf(this.start.messagesIn);
  }

  get errors(): number {
    return this.latest.errors - this.start.errors;
  }

  /** Errors per client message in the window; undefined with no message. */
  get errorRate(): number | undefined {
    const n = this.messagesIn;
    return n > 0 ? this.errors / n : undefined;
  }

  get transportFailovers(): number {
    return this.latest.transportFailovers - this.start.transportFailovers;
  }

  get latency(): HistogramSnapshot {
    return this.latest === this.start
      ? emptyLike(this.latest.latency)
      : histogramDelta(this.latest.latency, this.start.latency);
  }

  quantile(q: number): number | undefined {
    return quantileMs(this.latency, q);
  }

  /** Per-second rate of a cumulative figure over the window. */
  rate(pick: (s: StatsSample) => number): number {
    const s = this.seconds;
    return s > 0 ? (pick(this.latest) - pick(this.start)) / s : 0;
  }
}

function emptyLike(h: HistogramSnapshot): HistogramSnapshot {
  return { counts: h.counts.map(() => 0), count: 0, sum: 0 };
}

/** The fuller share of a pool's maximum in use (0 when the pool may not grow). */
export function poolUtilisation(p: PoolFigures): number {
  return p.max > 0 ? p.borrowed / p.max : 0;
}
