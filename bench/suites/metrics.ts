/**
 * Suite `metrics`: what Prometheus scraping costs the hot path. The same closed loop of
 * tools/call at `--replica-sessions` sessions (over the ws and streamable-http of `--transports`)
 * through one gateway to the fast upstream, in alternating rounds with /metrics scraped every
 * second and without (the counters are always kept; only reading them differs). Medians over
 * the rounds after the warm-up round.
 */
import type { BenchTransport } from '../ipc';
import { pairWindow, runScenario, through, type ScenarioResult } from '../scenario';
import { fastService, guarded } from '../servers';
import { medianOfRounds, median, round, type RoundMedian } from '../stats';
import { defineSuite, type SuiteContext } from '../suite';

interface MetricsScrapeStats {
  scrapes: number;
  failed: number;
  /** Median time for one scrape to answer (ms) and its size (bytes). */
  medianMs: number | null;
  bytes: number | null;
}

interface MetricsReport {
  note: string;
  options: { transports: BenchTransport[]; sessions: number; scrapeIntervalMs: number; rounds: number };
  rounds: Array<{
    transport: BenchTransport;
    scraped: boolean;
    round: number;
    result: ScenarioResult;
    scrape?: MetricsScrapeStats;
  }>;
  perTransport: Array<{
    transport: BenchTransport;
    scraped: RoundMedian;
    plain: RoundMedian;
    throughputRatio: number;
  }>;
}

const SCRAPE_INTERVAL_MS = 1000;

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
      return {
        scrapes: times.length + failed,
        failed,
        medianMs: times.length ? Math.round(median(times) * 100) / 100 : null,
        bytes,
      };
    },
  };
}

async function runMetrics({ opts, failures }: SuiteContext): Promise<{ metrics: MetricsReport }> {
  const chosen = opts.transports.filter((t) => t === 'ws' || t === 'streamable-http');
  const options: MetricsReport['options'] = {
    transports: chosen.length > 0 ? chosen : ['ws'],
    sessions: opts.replicaSessions,
    scrapeIntervalMs: SCRAPE_INTERVAL_MS,
    rounds: opts.pairRounds,
  };
  const rounds: MetricsReport['rounds'] = [];
  await guarded(failures, 'the metrics suite', opts.logLevel, async (servers) => {
    const upstream = await servers.upstream('fast upstream (metrics)');
    const gateway = await servers.gateway('gateway (metrics)', fastService(upstream.url));
    for (let round = 0; round <= options.rounds; round++) {
      for (const transport of options.transports) {
        for (const scraped of round % 2 === 0 ? [true, false] : [false, true]) {
          const s = scraped ? scraper(`${gateway.url}/metrics`, options.scrapeIntervalMs) : undefined;
          const result = await runScenario({
            ...pairWindow(opts),
            ...through(gateway, upstream),
            transport,
            sessions: options.sessions,
            label: `${scraped ? `scrape/${options.scrapeIntervalMs}ms` : 'no scrape'} r${round}`,
          });
          const scrape = s ? await s.stop() : undefined;
          rounds.push({ transport, scraped, round, result, scrape });
        }
      }
    }
  });
  const perTransport: MetricsReport['perTransport'] = [];
  const medianOf = medianOfRounds(rounds, (r) => r.result);
  for (const transport of options.transports) {
    const scraped = medianOf((r) => r.transport === transport && r.scraped);
    const plain = medianOf((r) => r.transport === transport && !r.scraped);
    if (!scraped || !plain) continue;
    perTransport.push({
      transport,
      scraped,
      plain,
      throughputRatio: round(scraped.reqPerSec / plain.reqPerSec),
    });
  }
  return {
    metrics: {
      note:
        'Load worker → gateway (dedicated) → fast upstream, one gateway for every round; "scraped" rounds fetch ' +
        '/metrics from the orchestrator at the interval while the load runs. Order alternates per round.',
      options,
      rounds,
      perTransport,
    },
  };
}

function printMetrics({ metrics }: { metrics: MetricsReport | null }): void {
  if (!metrics) return;
  console.log('\n/metrics scraped every second vs not (medians; same gateway):');
  for (const t of metrics.perTransport) {
    console.log(
      `  ${t.transport.padEnd(16)} scraped ${t.scraped.reqPerSec} req/s (p99 ${t.scraped.p99} ms), ` +
        `not ${t.plain.reqPerSec} req/s (p99 ${t.plain.p99} ms): ×${t.throughputRatio}`,
    );
  }
}

export const metricsSuite = defineSuite<{ metrics: MetricsReport | null }>({
  name: 'metrics',
  empty: () => ({ metrics: null }),
  heading: (opts) =>
    `tools/call at ${opts.replicaSessions} sessions with /metrics scraped every second, next to no scraping:`,
  run: runMetrics,
  summary: printMetrics,
});
