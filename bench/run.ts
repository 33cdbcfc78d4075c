/**
 * `npm run bench`: throughput and latency of tools/call through the gateway versus straight to
 * the same upstream, at several concurrency levels, over Streamable HTTP and legacy SSE.
 *
 * Processes: this orchestrator; the fast upstream; the gateway; one load worker per scenario.
 * Each has its own event loop, but they share the machine's cores — on a 2-core machine the
 * direct baseline runs two busy processes, the gateway path three, which the output states.
 *
 * Options (all optional): --duration-ms=5000 --warmup-ms=1000 --levels=1,50,500
 *   --transports=streamable-http,sse --targets=direct,gateway,demo --log-level=warn
 * Results: bench/results/<date>.json and bench/results/latest.json; a summary on stdout.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import {
  forkChild,
  installExitHandlers,
  profile,
  stopChild,
  usageOf,
  waitReady,
  type BenchChild,
} from './children';
import type {
  BenchTransport,
  LoadFailure,
  LoadJob,
  LoadResult,
  MemorySample,
  UsageReply,
  WindowMessage,
} from './ipc';

type TargetKind = 'direct' | 'gateway';
type UpstreamKind = 'fast' | 'embedded-demo';

interface Options {
  durationMs: number;
  warmupMs: number;
  levels: number[];
  transports: BenchTransport[];
  /** direct: load → fast upstream; gateway: load → gateway → fast upstream; demo: load → gateway (embedded demo). */
  targets: Array<'direct' | 'gateway' | 'demo'>;
  logLevel: string;
  /** Write a CPU profile of the gateway over each measured window to dist/bench/profiles/. */
  profile: boolean;
}

interface GatewayMemory {
  /** After a full GC, before the level's sessions connect. */
  before?: MemorySample;
  /** Highest rss / heapUsed seen while the level ran (sampled every 250 ms, no GC). */
  peak?: { rss: number; heapUsed: number };
  /** Right after the level, sessions closed, no GC. */
  after?: MemorySample;
  /** After the level and a full GC: what the level left behind. */
  afterGc?: MemorySample;
}

interface ScenarioResult {
  transport: BenchTransport;
  target: TargetKind;
  upstream: UpstreamKind;
  sessions: number;
  sessionsOpen: number;
  /** Sessions whose DELETE failed at the end. */
  closeErrors: number;
  requests: number;
  errors: number;
  errorSamples: string[];
  durationMs: number;
  reqPerSec: number;
  latencyMs: LoadResult['latencyMs'];
  handshakeMs: LoadResult['handshakeMs'];
  responseTypes: Record<string, number>;
  /** CPU use during the measured window, 100 = one core; shows which process was the bottleneck. */
  cpuPercent: { loadWorker: number | null; upstream: number | null; gateway: number | null };
  gatewayMemory: GatewayMemory | null;
  /** Path of the gateway CPU profile for this scenario (--profile), openable in Chrome DevTools. */
  cpuProfile: string | null;
}

interface AddedLatency {
  transport: BenchTransport;
  sessions: number;
  /** Gateway minus direct, same upstream (the fast one), same load. */
  addedLatencyMs: { p50: number; p99: number };
  /** Gateway throughput as a fraction of direct. */
  throughputRatio: number;
}

/** DESIGN.md §12 targets for the HTTP transports. */
const BUDGET = { minReqPerSec: 20_000, maxP99MsAt500: 60 };
const FAST_TOOL = { name: 'echo', arguments: { message: 'hello' } };
/** The embedded demo upstream's echo tool (src/upstream/demo-server.ts). */
const DEMO_TOOL = { name: 'echo', arguments: { text: 'hello' } };
const PATHS: Record<BenchTransport, string> = { 'streamable-http': '/mcp', sse: '/sse' };
/** Handshake deadline + drain grace in the worker, plus slack for fork and IPC. */
const WORKER_SLACK_MS = 45_000;

const here = __dirname;
const resultsDir = resolve(here, '../../bench/results');

function parseOptions(argv: string[]): Options {
  const opts: Options = {
    durationMs: 5_000,
    warmupMs: 1_000,
    levels: [1, 50, 500],
    transports: ['streamable-http', 'sse'],
    targets: ['direct', 'gateway', 'demo'],
    logLevel: 'warn',
    profile: false,
  };
  for (const arg of argv) {
    if (arg === '--profile') {
      opts.profile = true;
      continue;
    }
    const m = /^--([a-z-]+)=(.*)$/.exec(arg);
    if (!m) throw new Error(`unknown argument ${arg}`);
    const [, key, value] = m;
    const list = value.split(',').filter(Boolean);
    switch (key) {
      case 'duration-ms':
        opts.durationMs = positive(key, value);
        break;
      case 'warmup-ms':
        opts.warmupMs = value === '0' ? 0 : positive(key, value);
        break;
      case 'levels':
        opts.levels = list.map((v) => positive(key, v));
        break;
      case 'transports':
        opts.transports = list.map((v) => oneOf(key, v, ['streamable-http', 'sse'] as const));
        break;
      case 'targets':
        opts.targets = list.map((v) => oneOf(key, v, ['direct', 'gateway', 'demo'] as const));
        break;
      case 'log-level':
        opts.logLevel = value;
        break;
      default:
        throw new Error(`unknown option --${key}`);
    }
  }
  return opts;
}

function positive(key: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new Error(`--${key}: expected a positive integer, got "${value}"`);
  return n;
}

function oneOf<T extends string>(key: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new Error(`--${key}: "${value}" is not one of ${allowed.join(', ')}`);
  }
  return value as T;
}

async function startUpstream(): Promise<{ child: BenchChild; url: string }> {
  const child = forkChild('fast upstream', join(here, 'fast-upstream.js'));
  return { child, url: await waitReady(child, 10_000) };
}

async function startGateway(
  name: string,
  services: Record<string, unknown>,
  logLevel: string,
): Promise<{ child: BenchChild; url: string }> {
  const args = JSON.stringify({
    env: { LOG_LEVEL: logLevel },
    config: { services, defaultService: Object.keys(services)[0] },
  });
  // --expose-gc only so memory "before"/"afterGc" are measured after a full collection.
  const child = forkChild(name, join(here, 'gateway-process.js'), [args], ['--expose-gc']);
  try {
    return { child, url: await waitReady(child, 30_000) };
  } catch (err) {
    await stopChild(child);
    throw err;
  }
}

async function runWorker(
  job: LoadJob,
  onWindow: (phase: WindowMessage['phase']) => void,
): Promise<LoadResult> {
  const worker = forkChild(`load worker (${job.transport}, ${job.sessions})`, join(here, 'load-worker.js'));
  const timeoutMs = job.warmupMs + job.durationMs + WORKER_SLACK_MS;
  try {
    return await new Promise<LoadResult>((resolvePromise, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`load worker gave no result within ${timeoutMs} ms`)),
        timeoutMs,
      );
      worker.process.on('message', (msg: LoadResult | LoadFailure | WindowMessage) => {
        if (msg.type === 'window') return onWindow(msg.phase);
        clearTimeout(timer);
        if (msg.type === 'result') resolvePromise(msg);
        else reject(new Error(`load worker failed: ${msg.error}`));
      });
      worker.process.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`load worker exited (code ${code}) without a result:\n${worker.output()}`));
      });
      worker.process.send(job);
    });
  } finally {
    await stopChild(worker, 1_000);
  }
}

/** CPU use between two samples of the same process, in percent of one core. */
function cpuPercent(a: UsageReply | undefined, b: UsageReply | undefined): number | null {
  if (!a || !b || b.at <= a.at) return null;
  const us = b.cpu.user + b.cpu.system - a.cpu.user - a.cpu.system;
  return Math.round(us / ((b.at - a.at) * 10));
}

interface Servers {
  upstream: BenchChild;
  gateway?: BenchChild;
  /** Where this scenario's gateway CPU profile goes (with --profile). */
  profileFile?: string;
}

async function runScenario(
  opts: Options,
  transport: BenchTransport,
  target: TargetKind,
  upstream: UpstreamKind,
  baseUrl: string,
  sessions: number,
  servers: Servers,
): Promise<ScenarioResult> {
  const job: LoadJob = {
    type: 'job',
    baseUrl,
    transport,
    path: PATHS[transport],
    sessions,
    warmupMs: opts.warmupMs,
    durationMs: opts.durationMs,
    tool: upstream === 'fast' ? FAST_TOOL : DEMO_TOOL,
  };
  const gateway = servers.gateway;
  const memory: GatewayMemory | null = gateway ? {} : null;
  let sampler: NodeJS.Timeout | undefined;
  if (gateway && memory) {
    memory.before = (await usageOf(gateway, true))?.memory;
    const peak = { rss: 0, heapUsed: 0 };
    memory.peak = peak;
    let sampling = false;
    sampler = setInterval(() => {
      if (sampling) return;
      sampling = true;
      void usageOf(gateway, false).then((u) => {
        sampling = false;
        if (!u) return;
        peak.rss = Math.max(peak.rss, u.memory.rss);
        peak.heapUsed = Math.max(peak.heapUsed, u.memory.heapUsed);
      });
    }, 250);
  }
  // CPU of the servers over exactly the worker's measured window.
  const cpuSamples: Record<'start' | 'end', Promise<Array<UsageReply | undefined>> | undefined> = {
    start: undefined,
    end: undefined,
  };
  let profiling: Promise<string | undefined> | undefined;
  const onWindow = (phase: WindowMessage['phase']) => {
    cpuSamples[phase] = Promise.all([
      usageOf(servers.upstream, false),
      gateway ? usageOf(gateway, false) : Promise.resolve(undefined),
    ]);
    if (gateway && servers.profileFile) {
      const previous = profiling ?? Promise.resolve(undefined);
      profiling = previous.then(
        (err) => err ?? profile(gateway, phase === 'start' ? 'start' : 'stop', servers.profileFile),
      );
    }
  };
  const label = `${transport} ${target}${upstream === 'fast' ? '' : ` (${upstream})`} @${sessions}`;
  process.stdout.write(`  ${label.padEnd(44)}`);
  let result: LoadResult;
  try {
    result = await runWorker(job, onWindow);
  } catch (err) {
    result = failedResult(job, err);
  } finally {
    clearInterval(sampler);
  }
  const [startUsage, endUsage] = await Promise.all([cpuSamples.start, cpuSamples.end]);
  const profileError = await profiling;
  if (profileError) result.errorSamples.push(`CPU profile: ${profileError}`);
  if (gateway && memory) {
    memory.after = (await usageOf(gateway, false))?.memory;
    memory.afterGc = (await usageOf(gateway, true))?.memory;
  }
  console.log(
    `${String(result.reqPerSec).padStart(7)} req/s  p50 ${fmt(result.latencyMs.p50)}  p99 ${fmt(result.latencyMs.p99)} ms` +
      (result.errors ? `  errors ${result.errors}` : ''),
  );
  return {
    transport,
    target,
    upstream,
    sessions,
    sessionsOpen: result.sessionsOpen,
    closeErrors: result.closeErrors,
    requests: result.requests,
    errors: result.errors,
    errorSamples: result.errorSamples,
    durationMs: result.durationMs,
    reqPerSec: result.reqPerSec,
    latencyMs: result.latencyMs,
    handshakeMs: result.handshakeMs,
    responseTypes: result.responseTypes,
    cpuPercent: {
      loadWorker: result.requests > 0 ? result.cpuPercent : null,
      upstream: cpuPercent(startUsage?.[0], endUsage?.[0]),
      gateway: cpuPercent(startUsage?.[1], endUsage?.[1]),
    },
    gatewayMemory: memory,
    cpuProfile: servers.profileFile && profiling && !profileError ? servers.profileFile : null,
  };
}

function failedResult(job: LoadJob, err: unknown): LoadResult {
  const zero = { p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
  return {
    type: 'result',
    requests: 0,
    errors: 1,
    errorSamples: [err instanceof Error ? err.message : String(err)],
    durationMs: job.durationMs,
    reqPerSec: 0,
    latencyMs: zero,
    handshakeMs: zero,
    sessionsOpen: 0,
    closeErrors: 0,
    responseTypes: {},
    cpuPercent: 0,
  };
}

function addedLatency(scenarios: ScenarioResult[]): AddedLatency[] {
  const out: AddedLatency[] = [];
  for (const g of scenarios) {
    if (g.target !== 'gateway' || g.upstream !== 'fast') continue;
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

function budgetCheck(scenarios: ScenarioResult[]) {
  const out: Array<{
    transport: BenchTransport;
    bestReqPerSec: number;
    p99At500: number | null;
    meets: boolean;
  }> = [];
  for (const transport of new Set(scenarios.map((s) => s.transport))) {
    const gw = scenarios.filter(
      (s) => s.target === 'gateway' && s.upstream === 'fast' && s.transport === transport,
    );
    if (gw.length === 0) continue;
    const best = Math.max(...gw.map((s) => s.reqPerSec));
    const at500 = gw.find((s) => s.sessions === 500);
    const p99 = at500 && at500.requests > 0 ? at500.latencyMs.p99 : null;
    out.push({
      transport,
      bestReqPerSec: best,
      p99At500: p99,
      meets: best >= BUDGET.minReqPerSec && (p99 === null || p99 <= BUDGET.maxP99MsAt500),
    });
  }
  return out;
}

function gitInfo(): { commit: string | null; dirty: boolean | null } {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { encoding: 'utf8' }).trim().length > 0;
    return { commit, dirty };
  } catch {
    return { commit: null, dirty: null };
  }
}

const round = (n: number) => Math.round(n * 1000) / 1000;
const fmt = (n: number) => n.toFixed(2).padStart(7);
const mb = (bytes: number | undefined) =>
  bytes === undefined ? '   -' : (bytes / 1048576).toFixed(1).padStart(6);

function printSummary(report: {
  scenarios: ScenarioResult[];
  added: AddedLatency[];
  failures: Array<{ what: string; error: string }>;
  budget: ReturnType<typeof budgetCheck>;
}): void {
  console.log(
    '\ntransport        target   upstream       sess   req/s     p50     p90     p99     max  err   gw rss MB before/peak/afterGc',
  );
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
  if (report.added.length > 0) {
    console.log('\nadded by the gateway (gateway minus direct, fast upstream):');
    for (const a of report.added) {
      console.log(
        `  ${a.transport.padEnd(16)} @${String(a.sessions).padEnd(4)} p50 +${a.addedLatencyMs.p50.toFixed(2)} ms  ` +
          `p99 +${a.addedLatencyMs.p99.toFixed(2)} ms  throughput ${(a.throughputRatio * 100).toFixed(0)} % of direct`,
      );
    }
  }
  for (const b of report.budget) {
    console.log(
      `budget (DESIGN §12, ≥ ${BUDGET.minReqPerSec} req/s, p99 ≤ ${BUDGET.maxP99MsAt500} ms @500) ${b.transport}: ` +
        `best ${b.bestReqPerSec} req/s, p99@500 ${b.p99At500 ?? '-'} ms → ${b.meets ? 'met' : 'NOT met'}`,
    );
  }
  for (const s of report.scenarios.filter((x) => x.errorSamples.length > 0)) {
    console.log(`\nerrors in ${s.transport} ${s.target} (${s.upstream}) @${s.sessions}:`);
    for (const e of s.errorSamples) console.log(`  ${e}`);
  }
  for (const f of report.failures) console.log(`\n${f.what} failed:\n${f.error}`);
}

async function main(): Promise<void> {
  installExitHandlers();
  const opts = parseOptions(process.argv.slice(2));
  const started = new Date();
  const cpuCount = cpus().length;
  // Other work on the machine skews every figure; the load average at start says how much there was.
  const loadAtStart = loadavg();
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  // Profiles are large and machine-specific: kept beside the build output (ignored by git), not in results.
  const profileDir = join(here, 'profiles');
  if (opts.profile) mkdirSync(profileDir, { recursive: true });
  const profileFile = (transport: BenchTransport, upstream: UpstreamKind, sessions: number) =>
    opts.profile ? join(profileDir, `${stamp}-${transport}-${upstream}-${sessions}.cpuprofile`) : undefined;
  console.log(
    `MCP gateway bench — node ${process.version}, ${cpuCount} CPU(s) shared by load generator, gateway and upstream; ` +
      `${opts.durationMs} ms per level after ${opts.warmupMs} ms warm-up; gateway LOG_LEVEL=${opts.logLevel}`,
  );
  if (loadAtStart[0] > cpuCount / 2) {
    console.log(
      `warning: load average ${loadAtStart[0].toFixed(2)} on ${cpuCount} CPU(s) before the run — ` +
        'other work is using the cores, so these figures understate what the code can do',
    );
  }

  const scenarios: ScenarioResult[] = [];
  const failures: Array<{ what: string; error: string }> = [];
  const upstream = await startUpstream();
  try {
    if (opts.targets.includes('direct') || opts.targets.includes('gateway')) {
      let gateway: { child: BenchChild; url: string } | undefined;
      if (opts.targets.includes('gateway')) {
        try {
          gateway = await startGateway(
            'gateway (fast upstream)',
            {
              bench: {
                mode: 'dedicated',
                replicas: [{ transport: 'streamable-http', url: `${upstream.url}/mcp` }],
              },
            },
            opts.logLevel,
          );
        } catch (err) {
          failures.push({ what: 'starting the gateway (fast upstream)', error: (err as Error).message });
        }
      }
      try {
        for (const transport of opts.transports) {
          if (opts.targets.includes('direct')) {
            for (const n of opts.levels) {
              scenarios.push(
                await runScenario(opts, transport, 'direct', 'fast', upstream.url, n, {
                  upstream: upstream.child,
                }),
              );
            }
          }
          if (gateway) {
            for (const n of opts.levels) {
              scenarios.push(
                await runScenario(opts, transport, 'gateway', 'fast', gateway.url, n, {
                  upstream: upstream.child,
                  gateway: gateway.child,
                  profileFile: profileFile(transport, 'fast', n),
                }),
              );
            }
          }
        }
      } finally {
        if (gateway) await stopChild(gateway.child);
      }
    }

    if (opts.targets.includes('demo')) {
      let demo: { child: BenchChild; url: string } | undefined;
      try {
        // The same service the gateway runs with no configuration, declared explicitly so a
        // gateway.yaml in the working directory cannot change what is measured.
        demo = await startGateway(
          'gateway (embedded demo)',
          { demo: { mode: 'dedicated', replicas: [{ transport: 'embedded', server: 'demo' }] } },
          opts.logLevel,
        );
        for (const transport of opts.transports) {
          for (const n of opts.levels) {
            scenarios.push(
              await runScenario(opts, transport, 'gateway', 'embedded-demo', demo.url, n, {
                upstream: upstream.child,
                gateway: demo.child,
                profileFile: profileFile(transport, 'embedded-demo', n),
              }),
            );
          }
        }
      } catch (err) {
        failures.push({ what: 'the embedded demo gateway', error: (err as Error).message });
      } finally {
        if (demo) await stopChild(demo.child);
      }
    }
  } finally {
    await stopChild(upstream.child);
  }

  const added = addedLatency(scenarios);
  const budget = budgetCheck(scenarios);
  const report = {
    date: started.toISOString(),
    finishedAt: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpuCount,
    cpuModel: cpus()[0]?.model ?? null,
    totalMemoryBytes: totalmem(),
    loadAverageAtStart: loadAtStart.map(round),
    git: gitInfo(),
    note:
      `All processes share ${cpuCount} CPU(s): direct = load worker + upstream, gateway = load worker + gateway + ` +
      'upstream, so gateway figures include CPU contention a production deployment would not have.',
    options: opts,
    scenarios,
    addedLatency: added,
    budget,
    failures,
  };
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${stamp}.json`);
  const text = `${JSON.stringify(report, null, 2)}\n`;
  writeFileSync(file, text);
  writeFileSync(join(resultsDir, 'latest.json'), text);
  printSummary({ scenarios, added, failures, budget });
  console.log(`\nresults: ${file}`);
  const seconds = ((Date.now() - started.getTime()) / 1000).toFixed(1);
  console.log(`total ${seconds} s`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
