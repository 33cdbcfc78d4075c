/** Figures and their formatting, shared by the suites and their summaries. */

/** To three decimals (ms, ratios). */
export const round = (n: number) => Math.round(n * 1000) / 1000;
/** ms as `  12.34`, for the summary columns. */
export const fmt = (n: number) => n.toFixed(2).padStart(7);
/** Bytes as MB, `-` when unknown. */
export const mb = (bytes: number | undefined) =>
  bytes === undefined ? '   -' : (bytes / 1048576).toFixed(1).padStart(6);
/** Bytes as KB with two decimals. */
export const kb = (bytes: number) => (bytes / 1024).toFixed(2);
/** A signed difference, `+1.23` or `-1.23`. */
export const signed = (n: number) => `${n >= 0 ? '+' : ''}${n.toFixed(2)}`;

/** The median (the mean of the middle two for an even count), to three decimals; NaN for none. */
export function median(xs: number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : round((a[m - 1] + a[m]) / 2);
}

export interface RoundMedian {
  rounds: number;
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
}

/** What a measured round gives `roundMedian` (a load scenario's result). */
interface RoundFigures {
  requests: number;
  reqPerSec: number;
  errors: number;
  latencyMs: { p50: number; p99: number };
}

/** Median req/s, p50 and p99 (each on its own) over the rounds that completed requests; errors summed. */
export function roundMedian(rounds: RoundFigures[]): RoundMedian | null {
  const ok = rounds.filter((x) => x.requests > 0);
  if (ok.length === 0) return null;
  return {
    rounds: ok.length,
    reqPerSec: Math.round(median(ok.map((x) => x.reqPerSec))),
    p50: median(ok.map((x) => x.latencyMs.p50)),
    p99: median(ok.map((x) => x.latencyMs.p99)),
    errors: rounds.reduce((a, x) => a + x.errors, 0),
  };
}

/**
 * For the runs `match` picks, the median of their measured rounds: round 0 warms a fresh gateway
 * (JIT, pools) and is kept in the results but left out of the medians.
 */
export function medianOfRounds<T extends { round: number }>(
  runs: T[],
  figures: (run: T) => RoundFigures,
): (match: (run: T) => boolean) => RoundMedian | null {
  return (match) => roundMedian(runs.filter((r) => r.round > 0 && match(r)).map(figures));
}

/** `b ÷ a` req/s and `b − a` p99 of two medians. */
export function versus(b: RoundMedian, a: RoundMedian): { throughputRatio: number; p99DiffMs: number } {
  return { throughputRatio: round(b.reqPerSec / a.reqPerSec), p99DiffMs: round(b.p99 - a.p99) };
}
