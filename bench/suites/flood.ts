/**
 * Suite `flood`: a good client's tools/call latency (p50/p99, sequential calls over Streamable
 * HTTP from 127.0.0.1) without and then with a flood running (bench/flood-worker.ts: 127.0.0.2
 * opens connections as fast as it can, 127.0.0.3 floods initialize). The gateway (embedded demo
 * upstream) runs with per-address limits on, as on a non-loopback bind. Bounded: two windows of
 * `durationMs`.
 */
import { performance } from 'node:perf_hooks';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { nextMessage } from '../children';
import type { FloodWorkerResult } from '../flood-worker';
import { startBareGateway, startServer, withServers } from '../servers';
import { defineSuite, type SuiteContext } from '../suite';

interface FloodWindow {
  calls: number;
  errors: number;
  p50: number;
  p99: number;
  max: number;
}

interface FloodReport {
  note: string;
  /** The gateway's flood settings in this run. */
  env: Record<string, string>;
  baseline: FloodWindow | null;
  underFlood: FloodWindow | null;
  attackers: Omit<FloodWorkerResult, 'type'> | null;
}

/** Per-address limits as on an exposed gateway, a little lower so the flood meets them quickly. */
const FLOOD_ENV = {
  MAX_CONNECTIONS_PER_IP: '200',
  CONNECT_RATE_PER_IP: '100',
  CONNECT_BURST_PER_IP: '200',
  SESSION_RATE_PER_IP: '5',
  SESSION_BURST_PER_IP: '10',
  HEADERS_TIMEOUT_MS: '2000',
};

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/**
 * The good client keeps under its rate limit (RATE_LIMIT_PER_SECOND, 100 by default): a call at
 * most every 12.5 ms (80/s). A client that goes faster is refused 429 by design, which is not
 * what this suite measures.
 */
const GOOD_CLIENT_INTERVAL_MS = 12.5;

async function goodClientWindow(url: string, durationMs: number): Promise<FloodWindow> {
  const client = new Client({ name: 'bench-good-client', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', url)));
  const latencies: number[] = [];
  let errors = 0;
  const stopAt = Date.now() + durationMs;
  try {
    while (Date.now() < stopAt) {
      const t0 = performance.now();
      try {
        await client.callTool({ name: 'echo', arguments: { text: 'good' } });
        latencies.push(performance.now() - t0);
      } catch {
        errors++;
      }
      const wait = t0 + GOOD_CLIENT_INTERVAL_MS - performance.now();
      if (wait > 0) await new Promise((done) => setTimeout(done, wait));
    }
  } finally {
    await client.close();
  }
  latencies.sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    calls: latencies.length,
    errors,
    p50: r(quantile(latencies, 0.5)),
    p99: r(quantile(latencies, 0.99)),
    max: r(latencies[latencies.length - 1] ?? NaN),
  };
}

async function runFlood({ opts, failures }: SuiteContext): Promise<{ flood: FloodReport }> {
  const durationMs = opts.pairDurationMs;
  const report: FloodReport = {
    note:
      'Good client: sequential tools/call echo paced to ≤ 80/s (under its 100 req/s limit) over Streamable HTTP (SDK client) from 127.0.0.1 to the embedded demo; ' +
      'flood: 127.0.0.2 opens connections as fast as it can (≤500 in flight), 127.0.0.3 runs 32 initialize loops. ' +
      'All processes share the machine’s cores.',
    env: FLOOD_ENV,
    baseline: null,
    underFlood: null,
    attackers: null,
  };
  try {
    await withServers(opts.logLevel, async (servers) => {
      // Not the bench's usual gateway: the embedded demo with the per-address limits on, rate limits as configured.
      const { url } = servers.keep(
        await startBareGateway('gateway (flood)', {
          env: { LOG_LEVEL: opts.logLevel, ...FLOOD_ENV },
          config: {},
        }),
      );
      report.baseline = await goodClientWindow(url, durationMs);
      const worker = servers.keep(
        await startServer(
          'flood worker',
          'flood-worker',
          [JSON.stringify({ url, durationMs: durationMs + 1000 })],
          [],
          10_000,
        ),
      );
      const result = nextMessage(
        worker.child,
        (m: { type?: string }) => (m?.type === 'flood-result' ? (m as FloodWorkerResult) : undefined),
        durationMs + 30_000,
        'flood result',
      );
      // Let the flood reach the caps before measuring.
      await new Promise((r) => setTimeout(r, 500));
      report.underFlood = await goodClientWindow(url, durationMs);
      const { type: _type, ...attackers } = await result;
      report.attackers = attackers;
    });
  } catch (err) {
    failures.push({ what: 'the flood suite', error: (err as Error).message });
  }
  return { flood: report };
}

function printFlood({ flood: report }: { flood: FloodReport | null }): void {
  if (!report) return;
  const line = (name: string, w: FloodWindow | null) =>
    w
      ? `  ${name.padEnd(12)} ${String(w.calls).padStart(6)} calls  p50 ${w.p50.toFixed(2)} ms  p99 ${w.p99.toFixed(2)} ms  max ${w.max.toFixed(2)} ms  errors ${w.errors}`
      : `  ${name.padEnd(12)} -`;
  console.log('\ngood client during a flood (tools/call echo, sequential):');
  console.log(line('no flood', report.baseline));
  console.log(line('under flood', report.underFlood));
  const a = report.attackers;
  if (a) {
    console.log(
      `  attackers: ${a.connectionsOpened} connections opened (${a.connectionsRefused} answered 503), ` +
        `${a.initializes} initializes (${Object.entries(a.initializeStatuses)
          .map(([s, n]) => `${s}×${n}`)
          .join(', ')})`,
    );
  }
}

export const floodSuite = defineSuite<{ flood: FloodReport | null }>({
  name: 'flood',
  empty: () => ({ flood: null }),
  heading: () => 'good client while a flood runs:',
  run: runFlood,
  summary: printFlood,
});
