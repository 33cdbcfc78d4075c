/**
 * Suite `tracing`: the same closed loop of tools/call (Streamable HTTP, `--tracing-sessions`
 * sessions) through a gateway with tracing off and through gateways exporting spans to a dummy
 * OTLP receiver at sample ratio 1 and 0.1, alternated per round over the same fast upstream.
 */
import { createServer } from 'node:http';
import { pairWindow, runScenario, through, type ScenarioResult } from '../scenario';
import { fastService, guarded, type Server } from '../servers';
import { fmt, kb, medianOfRounds, signed, versus, type RoundMedian } from '../stats';
import { defineSuite, type SuiteContext } from '../suite';

/** The tracing suite's gateways: tracing off, and on with these sample ratios. */
const TRACING_SETTINGS = ['off', '1', '0.1'] as const;
type TracingSetting = (typeof TRACING_SETTINGS)[number];

interface TracingReport {
  note: string;
  /**
   * Scenarios by sampling setting: `off` (no OTLP endpoint), or the sample ratio as text
   * (`'1'`, `'0.1'`); round 0 = warm-up.
   */
  scenarios: Array<ScenarioResult & { tracing: TracingSetting; round: number }>;
  /** Median per setting over the measured rounds. */
  medians: Partial<Record<TracingSetting, RoundMedian | null>>;
  /** Each sampled setting ÷ off (throughput) and − off (p99, ms). */
  versusOff: Partial<Record<TracingSetting, { throughputRatio: number; p99DiffMs: number } | null>>;
  /** OTLP export requests and bytes the dummy receiver took. */
  exports: { requests: number; bytes: number };
}

/** A stand-in OTLP/HTTP collector in this process: takes POST /v1/traces, counts it, answers 200. */
async function startDummyCollector(): Promise<{
  url: string;
  close(): Promise<void>;
  seen: TracingReport['exports'];
}> {
  const seen = { requests: 0, bytes: 0 };
  const server = createServer((req, res) => {
    req.on('data', (c: Buffer) => (seen.bytes += c.length));
    req.on('end', () => {
      seen.requests++;
      // An empty ExportTraceServiceResponse in the encoding the exporter used (protobuf: no bytes).
      if (String(req.headers['content-type']).includes('protobuf'))
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

async function runTracing(ctx: SuiteContext): Promise<{ tracing: TracingReport }> {
  const { opts, failures } = ctx;
  const scenarios: TracingReport['scenarios'] = [];
  const collector = await startDummyCollector();
  try {
    await guarded(failures, 'the tracing suite', opts.logLevel, async (servers) => {
      const upstream = await servers.upstream('fast upstream (tracing)');
      const gateways: Array<Server & { tracing: TracingSetting }> = [];
      for (const setting of TRACING_SETTINGS) {
        const env: Record<string, string> =
          setting === 'off'
            ? {}
            : { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_TRACES_SAMPLER_ARG: setting };
        const gateway = await servers.gateway(`gateway (tracing ${setting})`, fastService(upstream.url), env);
        gateways.push({ ...gateway, tracing: setting });
      }
      for (let round = 0; round <= opts.pairRounds; round++) {
        for (const g of gateways) {
          const r = await runScenario({
            ...pairWindow(opts),
            ...through(g, upstream),
            transport: 'streamable-http',
            sessions: opts.tracingSessions,
            profileFile: round > 0 ? ctx.profileFile(`tracing-${g.tracing}-r${round}`) : undefined,
            label: `tracing ${g.tracing.padEnd(3)} r${round}`,
          });
          scenarios.push({ ...r, tracing: g.tracing, round });
        }
      }
    });
  } finally {
    await collector.close();
  }
  const medians: TracingReport['medians'] = {};
  const medianOf = medianOfRounds(scenarios, (x) => x);
  for (const setting of TRACING_SETTINGS) medians[setting] = medianOf((x) => x.tracing === setting);
  const off = medians.off;
  const versusOff: TracingReport['versusOff'] = {};
  for (const setting of TRACING_SETTINGS) {
    const m = medians[setting];
    if (setting !== 'off') versusOff[setting] = m && off ? versus(m, off) : null;
  }
  return {
    tracing: {
      note:
        `Streamable HTTP, ${opts.tracingSessions} sessions, tools/call through a dedicated gateway to the fast upstream; ` +
        'tracing 1 / 0.1 = ParentBased(TraceIdRatio) sampling at that ratio, OTLP/HTTP export (batch processor) ' +
        'of the sampled spans to a dummy receiver in the orchestrator; off = no OTLP endpoint.',
      scenarios,
      medians,
      versusOff,
      exports: collector.seen,
    },
  };
}

function printTracing({ tracing: t }: { tracing: TracingReport | null }): void {
  if (!t || !t.medians.off) return;
  console.log(
    '\ntracing off vs sample ratio 1 and 0.1 (streamable-http through the gateway, same upstream):',
  );
  for (const setting of TRACING_SETTINGS) {
    const m = t.medians[setting];
    if (!m) continue;
    const vs = t.versusOff[setting];
    console.log(
      `  tracing ${setting.padEnd(3)}: median of ${m.rounds} ${m.reqPerSec} req/s  p50 ${fmt(m.p50)}  p99 ${fmt(m.p99)} ms` +
        (vs ? `  (÷ off ${vs.throughputRatio.toFixed(2)}×, p99 ${signed(vs.p99DiffMs)} ms)` : '') +
        (m.errors ? `  errors ${m.errors}` : ''),
    );
  }
  console.log(`  ${t.exports.requests} OTLP exports, ${kb(t.exports.bytes)} KB`);
}

export const tracingSuite = defineSuite<{ tracing: TracingReport | null }>({
  name: 'tracing',
  empty: () => ({ tracing: null }),
  heading: (opts) =>
    `tools/call with tracing off, ratio 1, ratio 0.1 (streamable-http, ${opts.tracingSessions} sessions):`,
  run: runTracing,
  summary: printTracing,
});
