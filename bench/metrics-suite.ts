/**
 * Suite `metrics`: what Prometheus scraping costs the hot path. The same closed loop of
 * tools/call at `sessions` sessions through one gateway to the fast upstream, in alternating
 * rounds with /metrics scraped every `scrapeIntervalMs` and without (the counters are always
 * kept; only reading them differs). Medians over the rounds after the warm-up round.
 */
import type { BenchTransport } from './ipc';

export interface MetricsSuiteOptions {
  transports: BenchTransport[];
  sessions: number;
  scrapeIntervalMs: number;
  rounds: number;
}

/** What the suite needs from the orchestrator (run.ts owns the processes and the load workers). */
export interface MetricsSuiteDeps<R extends { reqPerSec: number; requests: number }, M> {
  /** Starts the fast upstream and a gateway in front of it; returns its URL and a stop function. */
  start(): Promise<{ url: string; stop(): Promise<void> }>;
  /** One measured scenario at `sessions` sessions over `transport`. */
  run(transport: BenchTransport, sessions: number, label: string): Promise<R>;
  median(results: R[]): M | null;
}

export interface MetricsScrapeStats {
  scrapes: number;
  failed: number;
  /** Median time for one scrape to answer (ms) and its size (bytes). */
  medianMs: number | null;
  bytes: number | null;
}

export interface MetricsReport<R, M> {
  note: string;
  options: MetricsSuiteOptions;
  rounds: Array<{
    transport: BenchTransport;
    scraped: boolean;
    round: number;
    result: R;
    scrape?: MetricsScrapeStats;
  }>;
  perTransport: Array<{ transport: BenchTransport; scraped: M; plain: M; throughputRatio: number }>;
}

/** Scrapes `url` every `intervalMs` until stopped; times each scrape. */
function scraper(url: string, intervalMs: number): { stop(): Promise<MetricsScrapeStats> } {
  const times: number[] = [];
  let bytes: number | null = null;
  let failed = 0;
  let inFlight: Promise<void> = Promise.resolve();
  const once = async () => {
    const t0 = performance.now();
    try {
      const res = await fetch(url);
      const text = await res.text();
      if (res.status !== 200) failed++;
      else {
        times.push(performance.now() - t0);
        bytes = Buffer.byteLength(text);
      }
    } catch {
      failed++;
    }
  };
  const timer = setInterval(() => {
    inFlight = inFlight.then(once);
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await inFlight;
      const sorted = [...times].sort((a, b) => a - b);
      return {
        scrapes: times.length + failed,
        failed,
        medianMs: sorted.length ? Math.round(sorted[sorted.length >> 1] * 100) / 100 : null,
        bytes,
      };
    },
  };
}

export async function runMetricsSuite<
  R extends { reqPerSec: number; requests: number },
  M extends { reqPerSec: number },
>(
  options: MetricsSuiteOptions,
  deps: MetricsSuiteDeps<R, M>,
  failures: Array<{ what: string; error: string }>,
): Promise<MetricsReport<R, M>> {
  const rounds: MetricsReport<R, M>['rounds'] = [];
  try {
    const gateway = await deps.start();
    try {
      // Round 0 warms the fresh gateway (JIT, pools); kept in the results, left out of the medians.
      for (let round = 0; round <= options.rounds; round++) {
        for (const transport of options.transports) {
          for (const scraped of round % 2 === 0 ? [true, false] : [false, true]) {
            const label = `${scraped ? `scrape/${options.scrapeIntervalMs}ms` : 'no scrape'} r${round}`;
            const s = scraped ? scraper(`${gateway.url}/metrics`, options.scrapeIntervalMs) : undefined;
            const result = await deps.run(transport, options.sessions, label);
            const scrape = s ? await s.stop() : undefined;
            rounds.push({ transport, scraped, round, result, scrape });
          }
        }
      }
    } finally {
      await gateway.stop();
    }
  } catch (err) {
    failures.push({ what: 'the metrics suite', error: (err as Error).message });
  }
  const perTransport: MetricsReport<R, M>['perTransport'] = [];
  for (const transport of options.transports) {
    const of = (scraped: boolean) =>
      deps.median(
        rounds
          .filter((r) => r.transport === transport && r.scraped === scraped && r.round > 0)
          .map((r) => r.result),
      );
    const scraped = of(true);
    const plain = of(false);
    if (!scraped || !plain) continue;
    perTransport.push({
      transport,
      scraped,
      plain,
      throughputRatio: Math.round((scraped.reqPerSec / plain.reqPerSec) * 1000) / 1000,
    });
  }
  return {
    note:
      'Load worker → gateway (dedicated) → fast upstream, one gateway for every round; "scraped" rounds fetch ' +
      '/metrics from the orchestrator at the interval while the load runs. Order alternates per round.',
    options,
    rounds,
    perTransport,
  };
}
