import type { GaugeType, Sample } from '../../telemetry/gauge-source';
import type { HistogramSnapshot } from '../../telemetry/latency-histogram';
import { LATENCY_BUCKETS_SECONDS } from '../../telemetry/latency-histogram';

export type { Sample };
export type ScrapeMetricType = GaugeType;

/**
 * A metric whose samples are read when Prometheus scrapes, from counters the hot path keeps as
 * plain numbers. It has the shape prom-client's Registry formats (name, help, type, get()), so
 * the registry writes the exposition text (escaping, HELP/TYPE lines) as for its own metrics;
 * nothing is stored between scrapes.
 */
export class ScrapeMetric {
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: ScrapeMetricType,
    private readonly read: (out: Sample[]) => void,
  ) {}

  get(): Promise<{
    name: string;
    help: string;
    type: ScrapeMetricType;
    values: Sample[];
    aggregator: string;
  }> {
    const values: Sample[] = [];
    this.read(values);
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' });
  }

  reset(): void {
    // Nothing kept here: the counters belong to the gateway.
  }
}

/** Appends one histogram series (cumulative buckets, +Inf, _sum, _count) of a LatencyHistogram snapshot. */
export function pushHistogram(
  out: Sample[],
  name: string,
  labels: Record<string, string>,
  snap: HistogramSnapshot,
): void {
  let cumulative = 0;
  for (let i = 0; i < LATENCY_BUCKETS_SECONDS.length; i++) {
    cumulative += snap.counts[i];
    out.push({
      metricName: `${name}_bucket`,
      labels: { ...labels, le: LATENCY_BUCKETS_SECONDS[i] },
      value: cumulative,
    });
  }
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: snap.count });
  out.push({ metricName: `${name}_sum`, labels, value: snap.sum });
  out.push({ metricName: `${name}_count`, labels, value: snap.count });
}

/**
 * Samples of a counter kept as a Map or a record of numbers by key. Keys written `from->to`
 * (failovers, switches) become two labels when `labels` names two.
 */
export function pushKeyed(
  out: Sample[],
  source: ReadonlyMap<string, number> | Readonly<Record<string, number>>,
  labels: readonly string[],
): void {
  const entries = source instanceof Map ? source.entries() : Object.entries(source);
  for (const [key, value] of entries) {
    if (typeof value !== 'number') continue;
    if (labels.length === 2) {
      const arrow = key.indexOf('->');
      const from = arrow === -1 ? key : key.slice(0, arrow);
      const to = arrow === -1 ? '' : key.slice(arrow + 2);
      out.push({ labels: { [labels[0]]: from, [labels[1]]: to }, value });
    } else {
      out.push({ labels: { [labels[0]]: key }, value });
    }
  }
}
