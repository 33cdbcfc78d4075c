/**
 * A fixed-bucket latency histogram the hot path can bump without allocating: one array index
 * found by a short linear scan, two additions. Prometheus collectors, the dashboard and the
 * alert rules read it at their own pace (`snapshot`), and a windowed view is the difference of
 * two snapshots.
 */

/** Upper bounds in seconds (Prometheus convention); the last bucket is +Inf. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

export interface HistogramSnapshot {
  /** Per bucket (not cumulative), one more than LATENCY_BUCKETS_SECONDS for +Inf. */
  counts: number[];
  count: number;
  /** Seconds. */
  sum: number;
}

export class LatencyHistogram {
  private readonly counts = new Array<number>(LATENCY_BUCKETS_SECONDS.length + 1).fill(0);
  private total = 0;
  private sumSeconds = 0;

  observe(milliseconds: number): void {
    const seconds = milliseconds / 1000;
    let i = 0;
    while (i < LATENCY_BUCKETS_SECONDS.length && seconds > LATENCY_BUCKETS_SECONDS[i]) i++;
    this.counts[i]++;
    this.total++;
    this.sumSeconds += seconds;
  }

  get count(): number {
    return this.total;
  }

  snapshot(): HistogramSnapshot {
    return { counts: this.counts.slice(), count: this.total, sum: this.sumSeconds };
  }
}

/** What was observed between two snapshots of one histogram. */
export function histogramDelta(
  later: HistogramSnapshot,
  earlier: HistogramSnapshot | undefined,
): HistogramSnapshot {
  if (!earlier) return later;
  return {
    counts: later.counts.map((c, i) => c - (earlier.counts[i] ?? 0)),
    count: later.count - earlier.count,
    sum: later.sum - earlier.sum,
  };
}

/**
 * The q-quantile (0–1) in milliseconds, interpolated linearly inside its bucket as Prometheus'
 * histogram_quantile does; undefined when nothing was observed. A quantile in the +Inf bucket
 * reports the highest finite bound.
 */
export function quantileMs(snapshot: HistogramSnapshot, q: number): number | undefined {
  if (snapshot.count <= 0) return undefined;
  const rank = q * snapshot.count;
  let seen = 0;
  for (let i = 0; i < snapshot.counts.length; i++) {
    const inBucket = snapshot.counts[i];
    if (seen + inBucket >= rank && inBucket > 0) {
      if (i >= LATENCY_BUCKETS_SECONDS.length)
        return LATENCY_BUCKETS_SECONDS[LATENCY_BUCKETS_SECONDS.length - 1] * 1000;
      const lower = i === 0 ? 0 : LATENCY_BUCKETS_SECONDS[i - 1];
      const upper = LATENCY_BUCKETS_SECONDS[i];
      return (lower + (upper - lower) * ((rank - seen) / inBucket)) * 1000;
    }
    seen += inBucket;
  }
  return LATENCY_BUCKETS_SECONDS[LATENCY_BUCKETS_SECONDS.length - 1] * 1000;
}
