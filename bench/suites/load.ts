/**
 * Suite `load`: the closed loop of tools/call over every transport and level, straight to the
 * fast upstream (`direct`), through a gateway in front of it (`gateway`) and through a gateway
 * with its embedded demo upstream (`demo`); then what the gateway adds, WebSocket next to
 * Streamable HTTP, and DESIGN.md §12's throughput budget.
 */
import { stopChild } from '../children';
import type { BenchTransport, LoadResult } from '../ipc';
import {
  printScenarioErrors,
  runScenario,
  through,
  type ScenarioResult,
  type ScenarioSpec,
} from '../scenario';
import { fastService, withServers, type Server } from '../servers';
import { fmt, mb, round } from '../stats';
import { defineSuite, type SuiteContext } from '../suite';

interface AddedLatency {
  transport: BenchTransport;
  sessions: number;
  /** Gateway minus direct, same upstream (the fast one), same load. */
  addedLatencyMs: { p50: number; p99: number };
  /** Gateway throughput as a fraction of direct. */
  throughputRatio: number;
}

interface WsVsHttp {
  sessions: number;
  ws: { reqPerSec: number; msgPerSec: number; latencyMs: LoadResult['latencyMs'] };
  streamableHttp: { reqPerSec: number; msgPerSec: number; latencyMs: LoadResult['latencyMs'] };
  /** WebSocket throughput as a multiple of Streamable HTTP through the same gateway. */
  throughputRatio: number;
  /** WebSocket minus Streamable HTTP. */
  latencyDiffMs: { p50: number; p90: number; p99: number };
}

interface Budget {
  transport: BenchTransport;
  target: { minReqPerSec: number; maxP99MsAt500: number };
  bestReqPerSec: number;
  p99At500: number | null;
  meets: boolean;
}

interface LoadSection {
  scenarios: ScenarioResult[];
  addedLatency: AddedLatency[];
  wsVsHttp: WsVsHttp[];
  budget: Budget[];
}

/** Where a level's load goes: the target's URL and processes. */
type Target = Pick<ScenarioSpec, 'target' | 'upstream' | 'url' | 'upstreamChild' | 'gateway'>;

/** DESIGN.md §12 targets: HTTP transports and WebSocket. */
const BUDGET = { minReqPerSec: 20_000, maxP99MsAt500: 60 };
const WS_BUDGET = { minReqPerSec: 45_000, maxP99MsAt500: 40 };

async function runLoad(ctx: SuiteContext): Promise<LoadSection> {
  const { opts, failures } = ctx;
  const scenarios: ScenarioResult[] = [];
  /** `transport` at every level against one target; through a gateway with its CPU profile (--profile). */
  const atEveryLevel = async (transport: BenchTransport, target: Target) => {
    for (const n of opts.levels) {
      const name = `${transport}-${target.upstream ?? 'fast'}-${n}`;
      scenarios.push(
        await runScenario({
          durationMs: opts.durationMs,
          warmupMs: opts.warmupMs,
          transport,
          sessions: n,
          ...target,
          profileFile: target.gateway ? ctx.profileFile(name) : undefined,
        }),
      );
    }
  };
  await withServers(opts.logLevel, async (servers) => {
    const upstream = await servers.upstream();
    let gateway: Server | undefined;
    if (opts.targets.includes('gateway')) {
      try {
        gateway = await servers.gateway('gateway (fast upstream)', fastService(upstream.url));
      } catch (err) {
        failures.push({ what: 'starting the gateway (fast upstream)', error: (err as Error).message });
      }
    }
    for (const transport of opts.transports) {
      // The fast upstream speaks HTTP only: WebSocket is measured through the gateway.
      if (opts.targets.includes('direct') && transport !== 'ws')
        await atEveryLevel(transport, { target: 'direct', url: upstream.url, upstreamChild: upstream.child });
      if (gateway) await atEveryLevel(transport, through(gateway, upstream));
    }
    // The demo gateway runs alone next to the (idle) fast upstream.
    if (gateway) await stopChild(gateway.child);
    if (!opts.targets.includes('demo')) return;
    try {
      // The same service the gateway runs with no configuration, declared explicitly so a
      // gateway.yaml in the working directory cannot change what is measured.
      const demo = await servers.gateway('gateway (embedded demo)', {
        demo: { mode: 'dedicated', replicas: [{ transport: 'embedded', server: 'demo' }] },
      });
      for (const transport of opts.transports)
        await atEveryLevel(transport, { ...through(demo, upstream), upstream: 'embedded-demo' });
    } catch (err) {
      failures.push({ what: 'the embedded demo gateway', error: (err as Error).message });
    }
  });
  return {
    scenarios,
    addedLatency: addedLatency(scenarios),
    wsVsHttp: wsVsHttp(scenarios),
    budget: budgetCheck(scenarios),
  };
}

/** Gateway scenarios in front of the fast upstream that completed requests. */
const throughFast = (scenarios: ScenarioResult[]) =>
  scenarios.filter((s) => s.target === 'gateway' && s.upstream === 'fast');

function addedLatency(scenarios: ScenarioResult[]): AddedLatency[] {
  const out: AddedLatency[] = [];
  for (const g of throughFast(scenarios)) {
    const d = scenarios.find(
      (s) => s.target === 'direct' && s.transport === g.transport && s.sessions === g.sessions,
    );
    if (!d || g.requests === 0 || d.requests === 0) continue;
    out.push({
      transport: g.transport,
      sessions: g.sessions,
      addedLatencyMs: {
        p50: round(g.latencyMs.p50 - d.latencyMs.p50),
        p99: round(g.latencyMs.p99 - d.latencyMs.p99),
      },
      throughputRatio: round(g.reqPerSec / d.reqPerSec),
    });
  }
  return out;
}

function budgetCheck(scenarios: ScenarioResult[]): Budget[] {
  const out: Budget[] = [];
  for (const transport of new Set(scenarios.map((s) => s.transport))) {
    const gw = throughFast(scenarios).filter((s) => s.transport === transport);
    if (gw.length === 0) continue;
    const target = transport === 'ws' ? WS_BUDGET : BUDGET;
    const best = Math.max(...gw.map((s) => s.reqPerSec));
    const at500 = gw.find((s) => s.sessions === 500);
    const p99 = at500 && at500.requests > 0 ? at500.latencyMs.p99 : null;
    out.push({
      transport,
      target,
      bestReqPerSec: best,
      p99At500: p99,
      meets: best >= target.minReqPerSec && (p99 === null || p99 <= target.maxP99MsAt500),
    });
  }
  return out;
}

/** tools/call over WebSocket vs Streamable HTTP, same gateway, same fast upstream, same level. */
function wsVsHttp(scenarios: ScenarioResult[]): WsVsHttp[] {
  const out: WsVsHttp[] = [];
  const gw = throughFast(scenarios).filter((s) => s.requests > 0);
  for (const w of gw.filter((s) => s.transport === 'ws')) {
    const h = gw.find((s) => s.transport === 'streamable-http' && s.sessions === w.sessions);
    if (!h) continue;
    const pick = (x: ScenarioResult) => ({
      reqPerSec: x.reqPerSec,
      msgPerSec: x.msgPerSec,
      latencyMs: x.latencyMs,
    });
    out.push({
      sessions: w.sessions,
      ws: pick(w),
      streamableHttp: pick(h),
      throughputRatio: round(w.reqPerSec / h.reqPerSec),
      latencyDiffMs: {
        p50: round(w.latencyMs.p50 - h.latencyMs.p50),
        p90: round(w.latencyMs.p90 - h.latencyMs.p90),
        p99: round(w.latencyMs.p99 - h.latencyMs.p99),
      },
    });
  }
  return out;
}

function printLoad(report: LoadSection): void {
  if (report.scenarios.length > 0) {
    console.log(
      '\ntransport        target   upstream       sess   req/s     p50     p90     p99     max  err   gw rss MB before/peak/afterGc',
    );
  }
  for (const s of report.scenarios) {
    const m = s.gatewayMemory;
    console.log(
      [
        s.transport.padEnd(16),
        s.target.padEnd(8),
        s.upstream.padEnd(13),
        String(s.sessions).padStart(5),
        String(s.reqPerSec).padStart(7),
        fmt(s.latencyMs.p50),
        fmt(s.latencyMs.p90),
        fmt(s.latencyMs.p99),
        fmt(s.latencyMs.max),
        String(s.errors).padStart(4),
        m ? ` ${mb(m.before?.rss)}/${mb(m.peak?.rss)}/${mb(m.afterGc?.rss)}` : '',
      ].join(' '),
    );
  }
  if (report.addedLatency.length > 0) {
    console.log('\nadded by the gateway (gateway minus direct, fast upstream):');
    for (const a of report.addedLatency) {
      console.log(
        `  ${a.transport.padEnd(16)} @${String(a.sessions).padEnd(4)} p50 +${a.addedLatencyMs.p50.toFixed(2)} ms  ` +
          `p99 +${a.addedLatencyMs.p99.toFixed(2)} ms  throughput ${(a.throughputRatio * 100).toFixed(0)} % of direct`,
      );
    }
  }
  if (report.wsVsHttp.length > 0) {
    console.log(
      '\nWebSocket vs Streamable HTTP through the gateway (fast upstream; msg/s = requests + responses):',
    );
    const lat = (l: LoadResult['latencyMs']) => `${l.p50.toFixed(2)}/${l.p90.toFixed(2)}/${l.p99.toFixed(2)}`;
    for (const w of report.wsVsHttp) {
      console.log(
        `  @${String(w.sessions).padEnd(4)} ws ${String(w.ws.msgPerSec).padStart(6)} msg/s p50/p90/p99 ` +
          `${lat(w.ws.latencyMs)} ms  http ${String(w.streamableHttp.msgPerSec).padStart(6)} msg/s p50/p90/p99 ` +
          `${lat(w.streamableHttp.latencyMs)} ms  → ws ${w.throughputRatio.toFixed(2)}× throughput`,
      );
    }
  }
  for (const b of report.budget) {
    console.log(
      `budget (DESIGN §12, ≥ ${b.target.minReqPerSec} req/s, p99 ≤ ${b.target.maxP99MsAt500} ms @500) ${b.transport}: ` +
        `best ${b.bestReqPerSec} req/s, p99@500 ${b.p99At500 ?? '-'} ms → ${b.meets ? 'met' : 'NOT met'}`,
    );
  }
  printScenarioErrors(report.scenarios, (s) => `${s.transport} ${s.target} (${s.upstream}) @${s.sessions}`);
}

export const loadSuite = defineSuite<LoadSection>({
  name: 'load',
  empty: () => ({ scenarios: [], addedLatency: [], wsVsHttp: [], budget: [] }),
  heading: () => 'load (closed loop of tools/call):',
  run: runLoad,
  summary: printLoad,
});
