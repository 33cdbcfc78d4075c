/**
 * `npm run bench`: throughput and latency of tools/call through the gateway versus straight to
 * the same upstream, at several concurrency levels, over Streamable HTTP, legacy SSE and
 * WebSocket (suite `load`); idle-connection cost at 10,000 WebSocket and 10,000 SSE
 * connections (suite `idle`); what WebSocket permessage-deflate costs and saves (suite
 * `compression`); how long a routing decision takes on the hash ring, ours next to the npm
 * `hashring` package (suite `ring`, in this process, about two seconds; also `node dist/bench/ring.js`).
 *
 * Processes: this orchestrator; the fast upstream; the gateway; one load worker per scenario
 * (several idle workers per idle scenario). Each has its own event loop, but they share the
 * machine's cores — on a 2-core machine the direct baseline runs two busy processes, the
 * gateway path three, which the output states.
 *
 * Options (all optional; see bench/README.md): --suites=ring,load,idle,compression
 *   --duration-ms=5000 --warmup-ms=1000 --levels=1,50,500 --transports=streamable-http,sse,ws
 *   --targets=direct,gateway,demo --log-level=warn --profile
 *   --idle-connections=10000 --idle-workers=4 --idle-kinds=ws,sse --idle-hold-ms=2000 --fd-limit=65536
 *   --compression-connections=1000 --compression-levels=1,50 --compression-duration-ms=2000
 *   --large-bytes=65536 --ring-ms=25 --ring-sizes=3,30,300
 * Results: bench/results/<date>.json and bench/results/latest.json; a summary on stdout.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import {
  forkChild,
  installExitHandlers,
  profile,
  raiseChildFdLimit,
  stopChild,
  usageOf,
  waitReady,
  type BenchChild,
  type FdLimitResult,
} from './children';
import { printFlood, runFloodSuite, type FloodReport } from './flood';
import { kb, runIdleScenario, type IdleKind, type IdleScenarioResult } from './idle';
import { runLimiterMicro, type LimiterMicroReport } from './rate-limit';
import { runMetricsSuite, type MetricsReport } from './metrics-suite';
import {
  parseRingOption,
  printRing,
  RING_DEFAULTS,
  runRingSuite,
  type RingOptions,
  type RingReport,
} from './ring';
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
type Suite = (typeof ALL_SUITES)[number];
const ALL_SUITES = [
  'ring',
  'load',
  'idle',
  'compression',
  'replicas',
  'ws-upstream',
  'pooled-idle',
  'flood',
  'rate-limit',
  'metrics',
  'tracing',
] as const;

interface Options {
  /** ring: hash-ring pick time; load: tools/call throughput/latency; idle: 10k idle connections; compression: WS permessage-deflate. */
  suites: Suite[];
  /** Ring suite: measured round per operation, and the replica counts. */
  ring: RingOptions;
  durationMs: number;
  warmupMs: number;
  levels: number[];
  transports: BenchTransport[];
  /** direct: load → fast upstream; gateway: load → gateway → fast upstream; demo: load → gateway (embedded demo). */
  targets: Array<'direct' | 'gateway' | 'demo'>;
  logLevel: string;
  /** Write a CPU profile of the gateway over each measured window to dist/bench/profiles/. */
  profile: boolean;
  /** Idle suite: connections per transport, spread over idleWorkers processes. */
  idleConnections: number;
  idleWorkers: number;
  idleKinds: IdleKind[];
  /** How long the connections idle, once all are open, before the gateway is measured. */
  idleHoldMs: number;
  /** RLIMIT_NOFILE wanted for the children (the gateway holds one fd per connection). */
  fdLimit: number;
  /** Compression suite: idle connections per setting, load levels and window for the large result. */
  compressionConnections: number;
  compressionLevels: number[];
  compressionDurationMs: number;
  /** Size of the large tool result (JSON text) for the compression suite. */
  largeBytes: number;
  /** Replicas suite: Streamable HTTP sessions (distinct client ids) against 1 and 3 replicas. */
  replicaSessions: number;
  /** WebSocket-upstream suite: WebSocket client sessions per level, WS upstream next to HTTP upstream. */
  wsUpstreamLevels: number[];
  /** Pooled-idle suite: idle WebSocket sessions over a pooled stdio server-everything, and the pool's max. */
  pooledConnections: number;
  pooledMax: number;
  /** Tracing suite: Streamable HTTP sessions through a gateway with tracing on and one with it off. */
  tracingSessions: number;
  /** replicas / ws-upstream: rounds of each pair, alternated (the median is reported), and their window. */
  pairRounds: number;
  pairDurationMs: number;
  pairWarmupMs: number;
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
  /** Messages per second on the client connection: requests plus responses (2 × reqPerSec). */
  msgPerSec: number;
  latencyMs: LoadResult['latencyMs'];
  handshakeMs: LoadResult['handshakeMs'];
  responseTypes: Record<string, number>;
  /** WebSocket only: TCP bytes per tools/call in the window, and the extensions negotiated. */
  wireBytesPerCall?: { sent: number; received: number };
  negotiatedExtensions?: string;
  /** CPU use during the measured window, 100 = one core; shows which process was the bottleneck. */
  cpuPercent: { loadWorker: number | null; upstream: number | null; gateway: number | null };
  gatewayMemory: GatewayMemory | null;
  /** The gateway's sessions, upstream leases and open fds before the level and after it (sessions closed). */
  gatewayCounts: { before?: Record<string, number>; afterGc?: Record<string, number> } | null;
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

/** DESIGN.md §12 targets: HTTP transports, WebSocket, and idle connections. */
const BUDGET = { minReqPerSec: 20_000, maxP99MsAt500: 60 };
const WS_BUDGET = { minReqPerSec: 45_000, maxP99MsAt500: 40 };
const IDLE_BUDGET: Record<IdleKind, { maxRssBytes: number; maxHeapBytes: number }> = {
  ws: { maxRssBytes: 10 * 1024, maxHeapBytes: 1024 },
  sse: { maxRssBytes: 14 * 1024, maxHeapBytes: 1024 },
};
const FAST_TOOL = { name: 'echo', arguments: { message: 'hello' } };
/** The embedded demo upstream's echo tool (src/upstream/demo-server.ts). */
const DEMO_TOOL = { name: 'echo', arguments: { text: 'hello' } };
const PATHS: Record<BenchTransport, string> = { 'streamable-http': '/mcp', sse: '/sse', ws: '/ws' };

/** Handshake deadline + drain grace in the worker, plus slack for fork and IPC. */
const WORKER_SLACK_MS = 45_000;

const here = __dirname;
const resultsDir = resolve(here, '../../bench/results');

function parseOptions(argv: string[]): Options {
  const opts: Options = {
    suites: [...ALL_SUITES],
    ring: { ...RING_DEFAULTS, ringSizes: [...RING_DEFAULTS.ringSizes] },
    durationMs: 5_000,
    warmupMs: 1_000,
    levels: [1, 50, 500],
    transports: ['streamable-http', 'sse', 'ws'],
    targets: ['direct', 'gateway', 'demo'],
    logLevel: 'warn',
    profile: false,
    idleConnections: 10_000,
    idleWorkers: 4,
    idleKinds: ['ws', 'sse'],
    idleHoldMs: 2_000,
    fdLimit: 65_536,
    compressionConnections: 1_000,
    compressionLevels: [1, 50],
    compressionDurationMs: 2_000,
    largeBytes: 65_536,
    replicaSessions: 50,
    wsUpstreamLevels: [1, 50, 500],
    pooledConnections: 10_000,
    pooledMax: 4,
    tracingSessions: 50,
    pairRounds: 3,
    pairDurationMs: 2_000,
    pairWarmupMs: 500,
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
        opts.transports = list.map((v) => oneOf(key, v, ['streamable-http', 'sse', 'ws'] as const));
        break;
      case 'suites':
        opts.suites = list.map((v) => oneOf(key, v, ALL_SUITES));
        break;
      case 'idle-connections':
        opts.idleConnections = positive(key, value);
        break;
      case 'idle-workers':
        opts.idleWorkers = positive(key, value);
        break;
      case 'idle-kinds':
        opts.idleKinds = list.map((v) => oneOf(key, v, ['ws', 'sse'] as const));
        break;
      case 'idle-hold-ms':
        opts.idleHoldMs = value === '0' ? 0 : positive(key, value);
        break;
      case 'fd-limit':
        opts.fdLimit = positive(key, value);
        break;
      case 'compression-connections':
        opts.compressionConnections = positive(key, value);
        break;
      case 'compression-levels':
        opts.compressionLevels = list.map((v) => positive(key, v));
        break;
      case 'compression-duration-ms':
        opts.compressionDurationMs = positive(key, value);
        break;
      case 'large-bytes':
        opts.largeBytes = positive(key, value);
        break;
      case 'replica-sessions':
        opts.replicaSessions = positive(key, value);
        break;
      case 'ws-upstream-levels':
        opts.wsUpstreamLevels = list.map((v) => positive(key, v));
        break;
      case 'pooled-connections':
        opts.pooledConnections = positive(key, value);
        break;
      case 'pooled-max':
        opts.pooledMax = positive(key, value);
        break;
      case 'tracing-sessions':
        opts.tracingSessions = positive(key, value);
        break;
      case 'pair-rounds':
        opts.pairRounds = positive(key, value);
        break;
      case 'pair-duration-ms':
        opts.pairDurationMs = positive(key, value);
        break;
      case 'pair-warmup-ms':
        opts.pairWarmupMs = value === '0' ? 0 : positive(key, value);
        break;
      case 'targets':
        opts.targets = list.map((v) => oneOf(key, v, ['direct', 'gateway', 'demo'] as const));
        break;
      case 'log-level':
        opts.logLevel = value;
        break;
      default:
        if (!parseRingOption(key, value, opts.ring)) throw new Error(`unknown option --${key}`);
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

async function startUpstream(name = 'fast upstream'): Promise<{ child: BenchChild; url: string }> {
  // --expose-gc so its memory, like the gateway's, can be read after a full collection.
  const child = forkChild(name, join(here, 'fast-upstream.js'), [], ['--expose-gc']);
  try {
    return { child, url: await waitReady(child, 10_000) };
  } catch (err) {
    await stopChild(child);
    throw err;
  }
}

/** The gateway with one dedicated service in front of the fast upstream's Streamable HTTP endpoint. */
function fastService(upstreamUrl: string): Record<string, unknown> {
  return {
    bench: { mode: 'dedicated', replicas: [{ transport: 'streamable-http', url: `${upstreamUrl}/mcp` }] },
  };
}

async function startGateway(
  name: string,
  services: Record<string, unknown>,
  logLevel: string,
  env: Record<string, string> = {},
  extraConfig: Record<string, unknown> = {},
): Promise<{ child: BenchChild; url: string }> {
  const args = JSON.stringify({
    // Rate limits off unless a suite turns them on (suite `rate-limit`): the load workers' sessions
    // are anonymous clients of one loopback address and would share one 100 req/s budget.
    // No initialize deadline either: the idle suites hold thousands of bare connections open for
    // longer than its 10 s on purpose (that flood defence has its own suite, `flood`).
    env: { LOG_LEVEL: logLevel, RATE_LIMIT_ENABLED: 'false', INIT_DEADLINE_MS: '0', ...env },
    config: { services, defaultService: Object.keys(services)[0], ...extraConfig },
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

/** What a scenario changes from the defaults (the compression suite's large-result runs). */
interface ScenarioVariant {
  tool?: LoadJob['tool'];
  wsCompression?: boolean;
  durationMs?: number;
  warmupMs?: number;
  /** Shown in the progress line. */
  label?: string;
  /** Endpoint path instead of the transport's default (e.g. `/ws/<service>`). */
  path?: string;
  /** Give every session its own client id `<prefix>-<i>` (so the ring spreads them). */
  clientIdPrefix?: string;
  /** Authenticate every session with this API key (X-API-Key). */
  apiKey?: string;
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
  variant: ScenarioVariant = {},
): Promise<ScenarioResult> {
  const job: LoadJob = {
    type: 'job',
    baseUrl,
    transport,
    path: variant.path ?? PATHS[transport],
    sessions,
    warmupMs: variant.warmupMs ?? opts.warmupMs,
    durationMs: variant.durationMs ?? opts.durationMs,
    tool: variant.tool ?? (upstream === 'fast' ? FAST_TOOL : DEMO_TOOL),
    ...(variant.wsCompression !== undefined ? { wsCompression: variant.wsCompression } : {}),
    ...(variant.clientIdPrefix !== undefined ? { clientIdPrefix: variant.clientIdPrefix } : {}),
    ...(variant.apiKey !== undefined ? { apiKey: variant.apiKey } : {}),
  };
  const gateway = servers.gateway;
  const memory: GatewayMemory | null = gateway ? {} : null;
  const counts: { before?: Record<string, number>; afterGc?: Record<string, number> } = {};
  let sampler: NodeJS.Timeout | undefined;
  if (gateway && memory) {
    const before = await usageOf(gateway, true);
    memory.before = before?.memory;
    counts.before = before?.counts;
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
  const label =
    `${transport} ${target}${upstream === 'fast' ? '' : ` (${upstream})`} @${sessions}` +
    (variant.label ? ` ${variant.label}` : '');
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
    const afterGc = await usageOf(gateway, true);
    memory.afterGc = afterGc?.memory;
    counts.afterGc = afterGc?.counts;
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
    msgPerSec: result.reqPerSec * 2,
    latencyMs: result.latencyMs,
    handshakeMs: result.handshakeMs,
    responseTypes: result.responseTypes,
    ...(result.wireBytesPerCall ? { wireBytesPerCall: result.wireBytesPerCall } : {}),
    ...(result.negotiatedExtensions !== undefined
      ? { negotiatedExtensions: result.negotiatedExtensions }
      : {}),
    cpuPercent: {
      loadWorker: result.requests > 0 ? result.cpuPercent : null,
      upstream: cpuPercent(startUsage?.[0], endUsage?.[0]),
      gateway: cpuPercent(startUsage?.[1], endUsage?.[1]),
    },
    gatewayMemory: memory,
    gatewayCounts: gateway ? counts : null,
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
    target: { minReqPerSec: number; maxP99MsAt500: number };
    bestReqPerSec: number;
    p99At500: number | null;
    meets: boolean;
  }> = [];
  for (const transport of new Set(scenarios.map((s) => s.transport))) {
    const gw = scenarios.filter(
      (s) => s.target === 'gateway' && s.upstream === 'fast' && s.transport === transport,
    );
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

interface WsVsHttp {
  sessions: number;
  ws: { reqPerSec: number; msgPerSec: number; latencyMs: LoadResult['latencyMs'] };
  streamableHttp: { reqPerSec: number; msgPerSec: number; latencyMs: LoadResult['latencyMs'] };
  /** WebSocket throughput as a multiple of Streamable HTTP through the same gateway. */
  throughputRatio: number;
  /** WebSocket minus Streamable HTTP. */
  latencyDiffMs: { p50: number; p90: number; p99: number };
}

/** tools/call over WebSocket vs Streamable HTTP, same gateway, same fast upstream, same level. */
function wsVsHttp(scenarios: ScenarioResult[]): WsVsHttp[] {
  const out: WsVsHttp[] = [];
  const gw = scenarios.filter((s) => s.target === 'gateway' && s.upstream === 'fast' && s.requests > 0);
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

function idleBudget(results: IdleScenarioResult[]) {
  return results
    .filter((r) => r.perConnection && r.established > 0)
    .map((r) => {
      const target = IDLE_BUDGET[r.kind];
      const pc = r.perConnection!;
      return {
        kind: r.kind,
        connections: r.established,
        target: { connections: 10_000, ...target },
        rssBytesPerConnection: pc.gatewayRssBytes,
        heapBytesPerSession: pc.gatewayHeapBytes,
        meets:
          r.established >= 10_000 &&
          r.errors === 0 &&
          pc.gatewayRssBytes <= target.maxRssBytes &&
          pc.gatewayHeapBytes < target.maxHeapBytes,
      };
    });
}

interface CompressionSetting {
  /** The gateway's WS_COMPRESSION (clients always offer permessage-deflate). */
  compression: boolean;
  thresholdBytes: number;
  /** compressionConnections idle connections; `warm` = after each carried one large result. */
  idle: IdleScenarioResult | null;
  /** Closed loop of the large tools/call over WebSocket, per level. */
  largeResult: ScenarioResult[];
}

interface CompressionReport {
  /** Requested size of the large tool result's JSON text. */
  largeResultBytes: number;
  settings: CompressionSetting[];
  /** On minus off. */
  comparison: {
    /** Per idle connection that never carried a large message (only the negotiated extension). */
    idleRssBytesPerConnection: number | null;
    idleHeapBytesPerConnection: number | null;
    /** Per idle connection after it carried one large result (zlib state kept per connection). */
    warmRssBytesPerConnection: number | null;
    warmExternalBytesPerConnection: number | null;
    /** TCP bytes from the gateway per large result, off and on, and the saving. */
    wireBytesPerResult: { off: number | null; on: number | null; savedPercent: number | null };
    perLevel: Array<{
      sessions: number;
      reqPerSec: { off: number; on: number };
      latencyMs: { off: LoadResult['latencyMs']; on: LoadResult['latencyMs'] };
      /** On minus off. */
      latencyDiffMs: { p50: number; p99: number };
    }>;
  };
}

function compareCompression(largeResultBytes: number, settings: CompressionSetting[]): CompressionReport {
  const off = settings.find((x) => !x.compression);
  const on = settings.find((x) => x.compression);
  const diff = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? null : a - b;
  const wireOff = off?.largeResult.find((x) => x.wireBytesPerCall)?.wireBytesPerCall?.received ?? null;
  const wireOn = on?.largeResult.find((x) => x.wireBytesPerCall)?.wireBytesPerCall?.received ?? null;
  const perLevel: CompressionReport['comparison']['perLevel'] = [];
  for (const a of off?.largeResult ?? []) {
    const b = on?.largeResult.find((x) => x.sessions === a.sessions);
    if (!b || a.requests === 0 || b.requests === 0) continue;
    perLevel.push({
      sessions: a.sessions,
      reqPerSec: { off: a.reqPerSec, on: b.reqPerSec },
      latencyMs: { off: a.latencyMs, on: b.latencyMs },
      latencyDiffMs: {
        p50: round(b.latencyMs.p50 - a.latencyMs.p50),
        p99: round(b.latencyMs.p99 - a.latencyMs.p99),
      },
    });
  }
  return {
    largeResultBytes,
    settings,
    comparison: {
      idleRssBytesPerConnection: diff(
        on?.idle?.perConnection?.gatewayRssBytes,
        off?.idle?.perConnection?.gatewayRssBytes,
      ),
      idleHeapBytesPerConnection: diff(
        on?.idle?.perConnection?.gatewayHeapBytes,
        off?.idle?.perConnection?.gatewayHeapBytes,
      ),
      warmRssBytesPerConnection: diff(
        on?.idle?.warm?.perConnection?.gatewayRssBytes,
        off?.idle?.warm?.perConnection?.gatewayRssBytes,
      ),
      warmExternalBytesPerConnection: diff(
        on?.idle?.warm?.perConnection?.gatewayExternalBytes,
        off?.idle?.warm?.perConnection?.gatewayExternalBytes,
      ),
      wireBytesPerResult: {
        off: wireOff,
        on: wireOn,
        savedPercent: wireOff && wireOn !== null ? Math.round((1 - wireOn / wireOff) * 1000) / 10 : null,
      },
      perLevel,
    },
  };
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
  wsHttp: WsVsHttp[];
  failures: Array<{ what: string; error: string }>;
  budget: ReturnType<typeof budgetCheck>;
  idle: IdleScenarioResult[];
  idleBudget: ReturnType<typeof idleBudget>;
  compression: CompressionReport | null;
  ring: RingReport | null;
}): void {
  if (report.ring) printRing(report.ring);
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
  if (report.added.length > 0) {
    console.log('\nadded by the gateway (gateway minus direct, fast upstream):');
    for (const a of report.added) {
      console.log(
        `  ${a.transport.padEnd(16)} @${String(a.sessions).padEnd(4)} p50 +${a.addedLatencyMs.p50.toFixed(2)} ms  ` +
          `p99 +${a.addedLatencyMs.p99.toFixed(2)} ms  throughput ${(a.throughputRatio * 100).toFixed(0)} % of direct`,
      );
    }
  }
  if (report.wsHttp.length > 0) {
    console.log(
      '\nWebSocket vs Streamable HTTP through the gateway (fast upstream; msg/s = requests + responses):',
    );
    for (const w of report.wsHttp) {
      console.log(
        `  @${String(w.sessions).padEnd(4)} ws ${String(w.ws.msgPerSec).padStart(6)} msg/s p50/p90/p99 ` +
          `${w.ws.latencyMs.p50.toFixed(2)}/${w.ws.latencyMs.p90.toFixed(2)}/${w.ws.latencyMs.p99.toFixed(2)} ms  ` +
          `http ${String(w.streamableHttp.msgPerSec).padStart(6)} msg/s p50/p90/p99 ` +
          `${w.streamableHttp.latencyMs.p50.toFixed(2)}/${w.streamableHttp.latencyMs.p90.toFixed(2)}/` +
          `${w.streamableHttp.latencyMs.p99.toFixed(2)} ms  → ws ${w.throughputRatio.toFixed(2)}× throughput`,
      );
    }
  }
  for (const b of report.budget) {
    console.log(
      `budget (DESIGN §12, ≥ ${b.target.minReqPerSec} req/s, p99 ≤ ${b.target.maxP99MsAt500} ms @500) ${b.transport}: ` +
        `best ${b.bestReqPerSec} req/s, p99@500 ${b.p99At500 ?? '-'} ms → ${b.meets ? 'met' : 'NOT met'}`,
    );
  }
  if (report.idle.length > 0) {
    console.log(
      '\nidle     conns   open  err  establish   gw RSS MB before→after (afterClose)   per conn: RSS KB  heap KB' +
        '   upstream RSS MB before→after  fds  fd limit',
    );
    for (const r of report.idle) {
      const g = r.gateway;
      const pc = r.perConnection;
      console.log(
        [
          r.kind.padEnd(5),
          String(r.connections).padStart(7),
          String(r.established).padStart(6),
          String(r.errors).padStart(4),
          `${String(r.establishMs ?? '-').padStart(6)} ms`,
          `   ${mb(g.before?.rss)} →${mb(g.after?.rss)} (${mb(g.afterClose?.rss).trim()})`.padEnd(36),
          pc ? kb(pc.gatewayRssBytes).padStart(8) : '       -',
          pc ? kb(pc.gatewayHeapBytes).padStart(8) : '       -',
          `   ${mb(r.upstream.before?.rss)} →${mb(r.upstream.after?.rss)}`.padEnd(28),
          String(g.counts?.openFds ?? '-').padStart(6),
          String(g.counts?.fdLimit ?? '-').padStart(8),
        ].join(' '),
      );
    }
    for (const b of report.idleBudget) {
      console.log(
        `budget (DESIGN §12, 10,000 idle ${b.kind} at ≤ ${b.target.maxRssBytes / 1024} KB RSS and < ${b.target.maxHeapBytes / 1024} KB heap each): ` +
          `${b.connections} open, ${kb(b.rssBytesPerConnection)} KB RSS, ${kb(b.heapBytesPerSession)} KB heap → ${b.meets ? 'met' : 'NOT met'}`,
      );
    }
    console.log(`  (${IDLE_NOTE_SHORT})`);
  }
  const c = report.compression;
  if (c && c.settings.length > 0) {
    console.log(
      `\nWebSocket permessage-deflate (threshold ${COMPRESSION_THRESHOLD} B, no context takeover):`,
    );
    for (const st of c.settings) {
      const i = st.idle;
      const pc = i?.perConnection;
      const w = i?.warm?.perConnection;
      console.log(
        `  ${st.compression ? 'on ' : 'off'}: ${i?.established ?? 0} idle conns ${pc ? kb(pc.gatewayRssBytes) : '-'} KB RSS / ` +
          `${pc ? kb(pc.gatewayHeapBytes) : '-'} KB heap each; after one ${Math.round(c.largeResultBytes / 1024)} KB result ` +
          `${w ? kb(w.gatewayRssBytes) : '-'} KB RSS / ${w ? kb(w.gatewayExternalBytes) : '-'} KB external each` +
          (i?.errors ? `  errors ${i.errors}` : ''),
      );
      for (const r of st.largeResult) {
        console.log(
          `       @${String(r.sessions).padEnd(4)} ${String(r.reqPerSec).padStart(6)} req/s  p50 ${fmt(r.latencyMs.p50)}  ` +
            `p99 ${fmt(r.latencyMs.p99)} ms  ${r.wireBytesPerCall?.received ?? '-'} B on the wire per result` +
            `  extensions "${r.negotiatedExtensions ?? ''}"` +
            (r.errors ? `  errors ${r.errors}` : ''),
        );
      }
    }
    const cmp = c.comparison;
    const kbOrDash = (n: number | null) => (n === null ? '-' : kb(n));
    console.log(
      `  on − off: idle ${kbOrDash(cmp.idleRssBytesPerConnection)} KB RSS per connection, ` +
        `after a large result ${kbOrDash(cmp.warmRssBytesPerConnection)} KB RSS per connection; ` +
        `wire ${cmp.wireBytesPerResult.off ?? '-'} → ${cmp.wireBytesPerResult.on ?? '-'} B per result ` +
        `(${cmp.wireBytesPerResult.savedPercent ?? '-'} % saved)`,
    );
    for (const l of cmp.perLevel) {
      console.log(
        `  @${l.sessions}: latency on − off p50 ${l.latencyDiffMs.p50.toFixed(2)} ms, p99 ${l.latencyDiffMs.p99.toFixed(2)} ms; ` +
          `throughput ${l.reqPerSec.off} → ${l.reqPerSec.on} req/s`,
      );
    }
  }
  for (const s of report.scenarios.filter((x) => x.errorSamples.length > 0)) {
    console.log(`\nerrors in ${s.transport} ${s.target} (${s.upstream}) @${s.sessions}:`);
    for (const e of s.errorSamples) console.log(`  ${e}`);
  }
  const idleRuns = [...report.idle, ...(c?.settings.map((x) => x.idle).filter((x) => x !== null) ?? [])];
  for (const r of idleRuns.filter((x) => x.errorSamples.length > 0)) {
    console.log(`\nerrors in idle ${r.kind} × ${r.connections}${r.compression ? ' (compression on)' : ''}:`);
    for (const e of r.errorSamples) console.log(`  ${e}`);
  }
  for (const st of c?.settings ?? []) {
    for (const s of st.largeResult.filter((x) => x.errorSamples.length > 0)) {
      console.log(
        `\nerrors in large-result ws @${s.sessions} (compression ${st.compression ? 'on' : 'off'}):`,
      );
      for (const e of s.errorSamples) console.log(`  ${e}`);
    }
  }
  for (const f of report.failures) console.log(`\n${f.what} failed:\n${f.error}`);
}

/** Suite `load`: the closed-loop scenarios (direct, gateway, demo) over every transport and level. */
async function runLoadSuite(
  opts: Options,
  profileFile: (t: BenchTransport, u: UpstreamKind, n: number) => string | undefined,
  scenarios: ScenarioResult[],
  failures: Array<{ what: string; error: string }>,
): Promise<void> {
  const upstream = await startUpstream();
  try {
    if (opts.targets.includes('direct') || opts.targets.includes('gateway')) {
      let gateway: { child: BenchChild; url: string } | undefined;
      if (opts.targets.includes('gateway')) {
        try {
          gateway = await startGateway('gateway (fast upstream)', fastService(upstream.url), opts.logLevel);
        } catch (err) {
          failures.push({ what: 'starting the gateway (fast upstream)', error: (err as Error).message });
        }
      }
      try {
        for (const transport of opts.transports) {
          // The fast upstream speaks HTTP only: WebSocket is measured through the gateway.
          if (opts.targets.includes('direct') && transport !== 'ws') {
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
}

/**
 * A fresh fast upstream and gateway for one idle or compression scenario, stopped afterwards:
 * the baseline is an empty gateway, and SSE sessions (resumable until their idle timeout)
 * cannot leak into the next scenario.
 */
async function withFreshGateway<T>(
  name: string,
  opts: Options,
  env: Record<string, string>,
  fn: (
    upstream: { child: BenchChild; url: string },
    gateway: { child: BenchChild; url: string },
  ) => Promise<T>,
): Promise<T> {
  const upstream = await startUpstream(`fast upstream (${name})`);
  try {
    const gateway = await startGateway(`gateway (${name})`, fastService(upstream.url), opts.logLevel, env);
    try {
      return await fn(upstream, gateway);
    } finally {
      await stopChild(gateway.child);
    }
  } finally {
    await stopChild(upstream.child);
  }
}

/** Suite `idle`: idleConnections idle WebSocket / SSE connections held against a fresh gateway. */
async function runIdleSuite(
  opts: Options,
  results: IdleScenarioResult[],
  failures: Array<{ what: string; error: string }>,
): Promise<void> {
  for (const kind of opts.idleKinds) {
    try {
      results.push(
        await withFreshGateway(`idle ${kind}`, opts, {}, (upstream, gateway) =>
          runIdleScenario({
            kind,
            connections: opts.idleConnections,
            workers: opts.idleWorkers,
            holdMs: opts.idleHoldMs,
            gateway: gateway.child,
            gatewayUrl: gateway.url,
            upstream: upstream.child,
            wsCompression: false,
            gatewayCompression: false,
            label: `idle ${kind} × ${opts.idleConnections} (${opts.idleWorkers} workers)`,
          }),
        ),
      );
    } catch (err) {
      failures.push({ what: `the idle ${kind} scenario`, error: (err as Error).message });
    }
  }
}

/** Suite `compression`: WebSocket permessage-deflate off vs on — idle cost and large-result savings. */
async function runCompressionSuite(
  opts: Options,
  failures: Array<{ what: string; error: string }>,
): Promise<CompressionReport> {
  const tool = { name: 'large', arguments: { bytes: opts.largeBytes } };
  const settings: CompressionSetting[] = [];
  for (const compression of [false, true]) {
    const name = `compression ${compression ? 'on' : 'off'}`;
    try {
      settings.push(
        await withFreshGateway(
          name,
          opts,
          {
            WS_COMPRESSION: String(compression),
            WS_COMPRESSION_THRESHOLD_BYTES: String(COMPRESSION_THRESHOLD),
          },
          async (upstream, gateway) => {
            const setting: CompressionSetting = {
              compression,
              thresholdBytes: COMPRESSION_THRESHOLD,
              idle: null,
              largeResult: [],
            };
            setting.idle = await runIdleScenario({
              kind: 'ws',
              connections: opts.compressionConnections,
              workers: Math.min(2, opts.idleWorkers),
              holdMs: Math.min(1_000, opts.idleHoldMs),
              gateway: gateway.child,
              gatewayUrl: gateway.url,
              upstream: upstream.child,
              wsCompression: true,
              gatewayCompression: compression,
              warmTool: tool,
              label: `ws ${name}: idle × ${opts.compressionConnections}`,
            });
            for (const n of opts.compressionLevels) {
              setting.largeResult.push(
                await runScenario(
                  opts,
                  'ws',
                  'gateway',
                  'fast',
                  gateway.url,
                  n,
                  { upstream: upstream.child, gateway: gateway.child },
                  {
                    tool,
                    wsCompression: true,
                    durationMs: opts.compressionDurationMs,
                    warmupMs: Math.min(500, opts.warmupMs),
                    label: `${Math.round(opts.largeBytes / 1024)} KB result, ${name}`,
                  },
                ),
              );
            }
            return setting;
          },
        ),
      );
    } catch (err) {
      failures.push({ what: `the ${name} scenario`, error: (err as Error).message });
    }
  }
  return compareCompression(opts.largeBytes, settings);
}

/** Streamable HTTP service over the fast upstreams' /mcp, one replica per URL (dedicated mode, ring on client_id). */
function replicatedService(name: string, urls: string[]): Record<string, unknown> {
  return {
    mode: 'dedicated',
    replicas: urls.map((url, i) => ({
      id: `${name}-${i + 1}`,
      transport: 'streamable-http',
      url: `${url}/mcp`,
    })),
  };
}

interface ReplicaRun {
  replicas: number;
  /** 0: the warm-up round, left out of the medians. */
  round: number;
  scenario: ScenarioResult;
  /** tools/call answered by each replica during the scenario (warm-up and window), in replica order. */
  callsPerReplica: number[];
}

interface ReplicaReport {
  note: string;
  runs: ReplicaRun[];
  /** Median over the rounds, per replica count. */
  median: Array<{ replicas: number } & RoundMedian>;
  /** 3 replicas ÷ 1 replica, medians. */
  throughputRatio: number | null;
  p99DiffMs: number | null;
}

interface RoundMedian {
  rounds: number;
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
}

/** Median req/s, p50 and p99 (each on its own) over the rounds that completed requests. */
function roundMedian(scenarios: ScenarioResult[]): RoundMedian | null {
  const ok = scenarios.filter((x) => x.requests > 0);
  if (ok.length === 0) return null;
  const med = (xs: number[]) => {
    const a = [...xs].sort((x, y) => x - y);
    const m = a.length >> 1;
    return a.length % 2 ? a[m] : round((a[m - 1] + a[m]) / 2);
  };
  return {
    rounds: ok.length,
    reqPerSec: Math.round(med(ok.map((x) => x.reqPerSec))),
    p50: med(ok.map((x) => x.latencyMs.p50)),
    p99: med(ok.map((x) => x.latencyMs.p99)),
    errors: scenarios.reduce((a, x) => a + x.errors, 0),
  };
}

const toolCallsOf = async (child: BenchChild) => (await usageOf(child, false))?.counts.toolCalls ?? 0;

/**
 * Suite `replicas`: the same closed loop of tools/call (Streamable HTTP, replicaSessions
 * sessions with distinct client ids) through one gateway to a service with one fast upstream
 * replica and to one with three, side by side. Every process shares the machine's cores, so
 * three upstreams do not add CPU: the figure shows what spreading costs or saves in the gateway.
 */
async function runReplicaSuite(
  opts: Options,
  failures: Array<{ what: string; error: string }>,
): Promise<ReplicaReport> {
  const runs: ReplicaRun[] = [];
  const ups: Array<{ child: BenchChild; url: string }> = [];
  try {
    for (let i = 1; i <= 3; i++) ups.push(await startUpstream(`fast upstream ${i} (replicas)`));
    const gateway = await startGateway(
      'gateway (1 vs 3 replicas)',
      {
        one: replicatedService('one', [ups[0].url]),
        three: replicatedService(
          'three',
          ups.map((u) => u.url),
        ),
      },
      opts.logLevel,
    );
    try {
      // Round 0 warms the fresh gateway (JIT, pools) and is kept in the results but left out of the medians.
      for (let round = 0; round <= opts.pairRounds; round++) {
        for (const [service, count] of [
          ['one', 1],
          ['three', 3],
        ] as const) {
          const before = await Promise.all(ups.slice(0, count).map((u) => toolCallsOf(u.child)));
          const scenario = await runScenario(
            opts,
            'streamable-http',
            'gateway',
            'fast',
            gateway.url,
            opts.replicaSessions,
            { upstream: ups[0].child, gateway: gateway.child },
            {
              path: `/mcp/${service}`,
              clientIdPrefix: 'bench-client',
              durationMs: opts.pairDurationMs,
              warmupMs: opts.pairWarmupMs,
              label: `${count} repl. r${round}`,
            },
          );
          const after = await Promise.all(ups.slice(0, count).map((u) => toolCallsOf(u.child)));
          runs.push({
            replicas: count,
            round,
            scenario,
            callsPerReplica: after.map((a, i) => a - before[i]),
          });
        }
      }
    } finally {
      await stopChild(gateway.child);
    }
  } catch (err) {
    failures.push({ what: 'the replicas suite', error: (err as Error).message });
  } finally {
    await Promise.all(ups.map((u) => stopChild(u.child)));
  }
  const median = [1, 3].flatMap((replicas) => {
    const m = roundMedian(runs.filter((r) => r.replicas === replicas && r.round > 0).map((r) => r.scenario));
    return m ? [{ replicas, ...m }] : [];
  });
  const one = median.find((m) => m.replicas === 1);
  const three = median.find((m) => m.replicas === 3);
  const ok = one && three;
  return {
    note:
      'Same gateway, services /mcp/one (1 fast upstream) and /mcp/three (3 fast upstreams, weight 1 each); ' +
      'sessions named bench-client-<i> so the ring (key client_id) spreads them. cpuPercent.upstream is replica 1 only.',
    runs,
    median,
    throughputRatio: ok ? round(three.reqPerSec / one.reqPerSec) : null,
    p99DiffMs: ok ? round(three.p99 - one.p99) : null,
  };
}

/** off: no policy; on: rate limits; auth: API-key authentication and rate limits. */
type PolicyVariant = 'off' | 'on' | 'auth';

/** The API key of suite `rate-limit`'s authenticated variant (a bench secret, nothing else). */
const BENCH_API_KEY = 'bench-api-key-not-a-secret-0123456789';

interface RateLimitReport {
  note: string;
  micro: LimiterMicroReport;
  runs: Array<{ limits: PolicyVariant; transport: BenchTransport; round: number; scenario: ScenarioResult }>;
  median: Array<{ limits: PolicyVariant; transport: BenchTransport } & RoundMedian>;
  /** limits on ÷ limits off, req/s, per transport. */
  throughputRatio: Partial<Record<BenchTransport, number>>;
  /** API-key authentication and limits on ÷ both off, req/s, per transport. */
  authThroughputRatio: Partial<Record<BenchTransport, number>>;
}

/**
 * Suite `rate-limit`: what the per-message policy costs. One decision in this process (the
 * gateway's synchronous bucket next to rate-limiter-flexible's promise per call), then the closed
 * loop of tools/call at replicaSessions sessions (distinct client ids, so one bucket each) through
 * two gateways on the same fast upstream, limits off and limits on (a limit no session reaches:
 * every request is checked, none refused), alternating per round.
 */
async function runRateLimitSuite(
  opts: Options,
  failures: Array<{ what: string; error: string }>,
): Promise<RateLimitReport> {
  const micro = await runLimiterMicro();
  console.log(
    `  one decision: token bucket ${micro.tokenBucketNs} ns, RateLimiterMemory awaited ${micro.flexibleAwaitedNs} ns, ` +
      `batched ${micro.flexibleBatchedNs} ns`,
  );
  const runs: RateLimitReport['runs'] = [];
  const transports: BenchTransport[] = ['streamable-http', 'ws'];
  let up: { child: BenchChild; url: string } | undefined;
  const gateways: Array<{ child: BenchChild; url: string }> = [];
  try {
    up = await startUpstream('fast upstream (rate-limit)');
    const off = await startGateway('gateway (limits off)', fastService(up.url), opts.logLevel);
    gateways.push(off);
    const on = await startGateway('gateway (limits on)', fastService(up.url), opts.logLevel, {
      RATE_LIMIT_ENABLED: 'true',
      RATE_LIMIT_PER_SECOND: '1000000',
    });
    gateways.push(on);
    const digest = `sha256:${createHash('sha256').update(BENCH_API_KEY).digest('hex')}`;
    const auth = await startGateway(
      'gateway (auth and limits on)',
      fastService(up.url),
      opts.logLevel,
      // One client for every session: no per-client session cap (WebSocket sessions outlive their round).
      {
        RATE_LIMIT_ENABLED: 'true',
        RATE_LIMIT_PER_SECOND: '1000000',
        AUTH_MODE: 'api_key',
        MAX_SESSIONS_PER_CLIENT: '0',
      },
      { clients: { bench: { apiKeys: [digest] } } },
    );
    gateways.push(auth);
    for (let round = 0; round <= opts.pairRounds; round++) {
      for (const transport of transports) {
        for (const [limits, gw] of [
          ['off', off],
          ['on', on],
          ['auth', auth],
        ] as const) {
          const scenario = await runScenario(
            opts,
            transport,
            'gateway',
            'fast',
            gw.url,
            opts.replicaSessions,
            { upstream: up.child, gateway: gw.child },
            {
              clientIdPrefix: 'bench-client',
              ...(limits === 'auth' ? { apiKey: BENCH_API_KEY } : {}),
              durationMs: opts.pairDurationMs,
              warmupMs: opts.pairWarmupMs,
              label: `limits ${limits} r${round}`,
            },
          );
          runs.push({ limits, transport, round, scenario });
        }
      }
    }
  } catch (err) {
    failures.push({ what: 'the rate-limit suite', error: (err as Error).message });
  } finally {
    await Promise.all(gateways.map((g) => stopChild(g.child)));
    if (up) await stopChild(up.child);
  }
  const median: RateLimitReport['median'] = [];
  const throughputRatio: RateLimitReport['throughputRatio'] = {};
  const authThroughputRatio: RateLimitReport['authThroughputRatio'] = {};
  for (const transport of transports) {
    const pick = (limits: PolicyVariant) =>
      roundMedian(
        runs
          .filter((r) => r.limits === limits && r.transport === transport && r.round > 0)
          .map((r) => r.scenario),
      );
    const offM = pick('off');
    const onM = pick('on');
    if (offM) median.push({ limits: 'off', transport, ...offM });
    if (onM) median.push({ limits: 'on', transport, ...onM });
    if (offM && onM) throughputRatio[transport] = round(onM.reqPerSec / offM.reqPerSec);
    const authM = pick('auth');
    if (authM) median.push({ limits: 'auth', transport, ...authM });
    if (offM && authM) authThroughputRatio[transport] = round(authM.reqPerSec / offM.reqPerSec);
  }
  for (const m of median) {
    console.log(
      `  ${m.transport} limits ${m.limits}: median of ${m.rounds} ${m.reqPerSec} req/s  p50 ${fmt(m.p50)}  p99 ${fmt(m.p99)} ms` +
        (m.errors ? `  errors ${m.errors}` : ''),
    );
  }
  return {
    note:
      'Two gateways on one fast upstream, sessions bench-client-<i> (one bucket each); limits on = RATE_LIMIT_PER_SECOND=1000000 ' +
      '(every request checked, none refused); auth = AUTH_MODE=api_key (X-API-Key on every request, one client) plus limits; ' +
      'round 0 is warm-up and left out of the medians.',
    micro,
    runs,
    median,
    throughputRatio,
    authThroughputRatio,
  };
}

interface WsUpstreamReport {
  note: string;
  /** Scenarios with `upstreamTransport` ('ws' | 'streamable-http'), client transport always ws; round 0 = warm-up. */
  scenarios: Array<ScenarioResult & { upstreamTransport: 'ws' | 'streamable-http'; round: number }>;
  /** Medians over the rounds, per level. */
  perLevel: Array<{
    sessions: number;
    wsUpstream: RoundMedian;
    httpUpstream: RoundMedian;
    /** WS upstream ÷ HTTP upstream. */
    throughputRatio: number;
    /** WS upstream − HTTP upstream. */
    p99DiffMs: number;
  }>;
}

/**
 * Suite `ws-upstream`: WebSocket clients through one gateway to the same fast upstream, once
 * over a `transport: ws` replica (its /ws listener) and once over Streamable HTTP (/mcp), at
 * wsUpstreamLevels; the two alternate per level so drift on the machine hits both alike.
 */
async function runWsUpstreamSuite(
  opts: Options,
  failures: Array<{ what: string; error: string }>,
): Promise<WsUpstreamReport> {
  const scenarios: WsUpstreamReport['scenarios'] = [];
  let upstream: { child: BenchChild; url: string } | undefined;
  try {
    upstream = await startUpstream('fast upstream (ws-upstream)');
    const wsUrlOf = upstream.url.replace(/^http/, 'ws');
    const gateway = await startGateway(
      'gateway (ws vs http upstream)',
      {
        viaws: { mode: 'dedicated', replicas: [{ transport: 'ws', url: `${wsUrlOf}/ws` }] },
        viahttp: fastService(upstream.url).bench,
      },
      opts.logLevel,
    );
    try {
      // Round 0 warms the fresh gateway (JIT, pools) and is kept in the results but left out of the medians.
      for (let round = 0; round <= opts.pairRounds; round++) {
        for (const n of opts.wsUpstreamLevels) {
          for (const [service, upstreamTransport] of [
            ['viaws', 'ws'],
            ['viahttp', 'streamable-http'],
          ] as const) {
            const r = await runScenario(
              opts,
              'ws',
              'gateway',
              'fast',
              gateway.url,
              n,
              { upstream: upstream.child, gateway: gateway.child },
              {
                path: `/ws/${service}`,
                durationMs: opts.pairDurationMs,
                warmupMs: opts.pairWarmupMs,
                label: `→ ${upstreamTransport === 'ws' ? 'ws' : 'http'} up r${round}`,
              },
            );
            scenarios.push({ ...r, upstreamTransport, round });
          }
        }
      }
    } finally {
      await stopChild(gateway.child);
    }
  } catch (err) {
    failures.push({ what: 'the ws-upstream suite', error: (err as Error).message });
  } finally {
    if (upstream) await stopChild(upstream.child);
  }
  const perLevel: WsUpstreamReport['perLevel'] = [];
  for (const n of opts.wsUpstreamLevels) {
    const of = (t: 'ws' | 'streamable-http') =>
      roundMedian(scenarios.filter((x) => x.upstreamTransport === t && x.sessions === n && x.round > 0));
    const w = of('ws');
    const h = of('streamable-http');
    if (!w || !h) continue;
    perLevel.push({
      sessions: n,
      wsUpstream: w,
      httpUpstream: h,
      throughputRatio: round(w.reqPerSec / h.reqPerSec),
      p99DiffMs: round(w.p99 - h.p99),
    });
  }
  return {
    note:
      'Client WebSocket (/ws/<service>) → gateway (dedicated) → fast upstream over a ws replica (/ws, subprotocol mcp) ' +
      'or a streamable-http replica (/mcp), same gateway and upstream processes.',
    scenarios,
    perLevel,
  };
}

/** Suite `metrics` (bench/metrics-suite.ts) on this orchestrator's processes and load workers. */
async function runMetricsBench(
  opts: Options,
  failures: Array<{ what: string; error: string }>,
): Promise<MetricsReport<ScenarioResult, RoundMedian>> {
  let upstream: { child: BenchChild; url: string } | undefined;
  let gateway: { child: BenchChild; url: string } | undefined;
  const transports = opts.transports.filter((t) => t === 'ws' || t === 'streamable-http');
  return runMetricsSuite<ScenarioResult, RoundMedian>(
    {
      transports: transports.length > 0 ? transports : ['ws'],
      sessions: opts.replicaSessions,
      scrapeIntervalMs: 1000,
      rounds: opts.pairRounds,
    },
    {
      start: async () => {
        upstream = await startUpstream('fast upstream (metrics)');
        gateway = await startGateway('gateway (metrics)', fastService(upstream.url), opts.logLevel);
        return {
          url: gateway.url,
          stop: async () => {
            if (gateway) await stopChild(gateway.child);
            if (upstream) await stopChild(upstream.child);
          },
        };
      },
      run: (transport, sessions, label) =>
        runScenario(
          opts,
          transport,
          'gateway',
          'fast',
          gateway!.url,
          sessions,
          { upstream: upstream!.child, gateway: gateway!.child },
          { durationMs: opts.pairDurationMs, warmupMs: opts.pairWarmupMs, label },
        ),
      median: roundMedian,
    },
    failures,
  ).finally(async () => {
    // start() failed half-way: nothing else stops what it started.
    if (upstream && !gateway) await stopChild(upstream.child);
  });
}

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

/** The tracing suite's gateways: tracing off, and on with these sample ratios. */
const TRACING_SETTINGS = ['off', '1', '0.1'] as const;
type TracingSetting = (typeof TRACING_SETTINGS)[number];

/** A stand-in OTLP/HTTP collector in this process: takes POST /v1/traces, counts it, answers 200. */
async function startDummyCollector(): Promise<{
  url: string;
  close(): Promise<void>;
  seen: TracingReport['exports'];
}> {
  const seen = { requests: 0, bytes: 0 };
  const server = createHttpServer((req, res) => {
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

/**
 * Suite `tracing`: the same closed loop of tools/call (Streamable HTTP, tracingSessions sessions)
 * through a gateway with tracing off and through gateways exporting spans to a dummy OTLP
 * receiver at sample ratio 1 and 0.1, alternated per round over the same fast upstream.
 */
async function runTracingSuite(
  opts: Options,
  failures: Array<{ what: string; error: string }>,
  profileFile: (setting: TracingSetting, round: number) => string | undefined,
): Promise<TracingReport> {
  const scenarios: TracingReport['scenarios'] = [];
  let upstream: { child: BenchChild; url: string } | undefined;
  let collector: Awaited<ReturnType<typeof startDummyCollector>> | undefined;
  const gateways: Array<{ child: BenchChild; url: string; tracing: TracingSetting }> = [];
  try {
    upstream = await startUpstream('fast upstream (tracing)');
    collector = await startDummyCollector();
    const service = fastService(upstream.url);
    for (const setting of TRACING_SETTINGS) {
      const env: Record<string, string> =
        setting === 'off'
          ? {}
          : { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_TRACES_SAMPLER_ARG: setting };
      gateways.push({
        ...(await startGateway(`gateway (tracing ${setting})`, service, opts.logLevel, env)),
        tracing: setting,
      });
    }
    // Round 0 warms the fresh gateways (JIT, pools) and is kept in the results but left out of the medians.
    for (let round = 0; round <= opts.pairRounds; round++) {
      for (const g of gateways) {
        const r = await runScenario(
          opts,
          'streamable-http',
          'gateway',
          'fast',
          g.url,
          opts.tracingSessions,
          { upstream: upstream.child, gateway: g.child, profileFile: profileFile(g.tracing, round) },
          {
            durationMs: opts.pairDurationMs,
            warmupMs: opts.pairWarmupMs,
            label: `tracing ${g.tracing.padEnd(3)} r${round}`,
          },
        );
        scenarios.push({ ...r, tracing: g.tracing, round });
      }
    }
  } catch (err) {
    failures.push({ what: 'the tracing suite', error: (err as Error).message });
  } finally {
    await Promise.all(gateways.map((g) => stopChild(g.child)));
    if (upstream) await stopChild(upstream.child);
    await collector?.close();
  }
  const medians: TracingReport['medians'] = {};
  for (const setting of TRACING_SETTINGS)
    medians[setting] = roundMedian(scenarios.filter((x) => x.tracing === setting && x.round > 0));
  const off = medians.off;
  const versusOff: TracingReport['versusOff'] = {};
  for (const setting of TRACING_SETTINGS) {
    const m = medians[setting];
    if (setting === 'off') continue;
    versusOff[setting] =
      m && off
        ? { throughputRatio: round(m.reqPerSec / off.reqPerSec), p99DiffMs: round(m.p99 - off.p99) }
        : null;
  }
  return {
    note:
      `Streamable HTTP, ${opts.tracingSessions} sessions, tools/call through a dedicated gateway to the fast upstream; ` +
      'tracing 1 / 0.1 = ParentBased(TraceIdRatio) sampling at that ratio, OTLP/HTTP export (batch processor) ' +
      'of the sampled spans to a dummy receiver in the orchestrator; off = no OTLP endpoint.',
    scenarios,
    medians,
    versusOff,
    exports: collector?.seen ?? { requests: 0, bytes: 0 },
  };
}

/** PIDs of every descendant of `pid`, from /proc (Linux). */
function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // Fields after the command name (in parentheses, may hold spaces): state, ppid, …
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const c of children.get(queue.pop()!) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

const SERVER_EVERYTHING = resolve(
  here,
  '../../node_modules/@modelcontextprotocol/server-everything/dist/index.js',
);

interface PooledIdleReport {
  note: string;
  pool: Record<string, unknown>;
  scenario: IdleScenarioResult | null;
  /** Per session once every session has initialized and made one tools/call. */
  perSession: {
    gatewayRssBytes: number;
    gatewayHeapBytes: number;
    /** The stdio children's RSS (all of them) divided by the sessions they serve. */
    childrenRssBytes: number;
  } | null;
  childProcesses: { after: number | null; warm: number | null; afterClose: number | null; max: number };
}

/**
 * Suite `pooled-idle`: pooledConnections WebSocket sessions against a gateway whose only service
 * is a pooled stdio server-everything (pool max pooledMax). The sessions first idle bare
 * (sample "after"), then each initializes and makes one echo call through the pool and idles
 * again (sample "warm"): that is a pooled session's cost. Children counted from /proc.
 */
async function runPooledIdleSuite(
  opts: Options,
  failures: Array<{ what: string; error: string }>,
): Promise<PooledIdleReport> {
  const pool = {
    min: 1,
    max: opts.pooledMax,
    // 4 workers × 64 warm-up calls in flight queue for the pool: room for all, time to drain them.
    maxWaitingClients: 20_000,
    acquireTimeoutMs: 30_000,
  };
  let scenario: IdleScenarioResult | null = null;
  let gateway: { child: BenchChild; url: string } | undefined;
  try {
    gateway = await startGateway(
      'gateway (pooled stdio)',
      {
        everything: {
          mode: 'pooled',
          pool,
          replicas: [{ transport: 'stdio', command: process.execPath, args: [SERVER_EVERYTHING, 'stdio'] }],
        },
      },
      opts.logLevel,
    );
    const pid = gateway.child.process.pid!;
    const probe = () => {
      const kids = descendantsOf(pid);
      return { childProcesses: kids.length, childrenRssBytes: kids.reduce((a, k) => a + rssOf(k), 0) };
    };
    scenario = await runIdleScenario({
      kind: 'ws',
      connections: opts.pooledConnections,
      workers: opts.idleWorkers,
      holdMs: opts.idleHoldMs,
      gateway: gateway.child,
      gatewayUrl: gateway.url,
      wsCompression: false,
      gatewayCompression: false,
      warmTool: { name: 'echo', arguments: { message: 'hello' } },
      probe,
      label: `pooled stdio idle × ${opts.pooledConnections} (max ${opts.pooledMax})`,
    });
  } catch (err) {
    failures.push({ what: 'the pooled-idle suite', error: (err as Error).message });
  } finally {
    if (gateway) await stopChild(gateway.child);
  }
  const warm = scenario?.warm?.perConnection;
  const n = scenario?.established ?? 0;
  return {
    note:
      'WebSocket sessions on a gateway with one pooled stdio service (server-everything). "after": bare sessions; ' +
      '"warm": each has initialized and made one echo call through the pool. Per session = (warm − before) / sessions, ' +
      'after a full GC; children counted as descendants of the gateway process in /proc.',
    pool,
    scenario,
    perSession:
      warm && n > 0
        ? {
            gatewayRssBytes: warm.gatewayRssBytes,
            gatewayHeapBytes: warm.gatewayHeapBytes,
            childrenRssBytes: Math.round((scenario?.probes?.warm?.childrenRssBytes ?? 0) / n),
          }
        : null,
    childProcesses: {
      after: scenario?.probes?.after?.childProcesses ?? null,
      warm: scenario?.probes?.warm?.childProcesses ?? null,
      afterClose: scenario?.probes?.afterClose?.childProcesses ?? null,
      max: opts.pooledMax,
    },
  };
}

/** The gateway's default threshold, stated explicitly so the report says what was measured. */
const COMPRESSION_THRESHOLD = 1024;

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
      `${opts.durationMs} ms per level after ${opts.warmupMs} ms warm-up; gateway LOG_LEVEL=${opts.logLevel}; ` +
      `suites ${opts.suites.join(', ')}`,
  );
  console.log(`load average at start: ${loadAtStart.map((x) => x.toFixed(2)).join(' ')}`);
  if (loadAtStart[0] > cpuCount / 2) {
    console.log(
      `warning: load average ${loadAtStart[0].toFixed(2)} on ${cpuCount} CPU(s) before the run — ` +
        'other work is using the cores, so these figures understate what the code can do',
    );
  }

  // Idle connections need one fd each in the gateway: raise the children's limit (or say why not).
  let fdLimit: FdLimitResult | null = null;
  const wantsFds = (['idle', 'compression', 'pooled-idle'] as const).some((x) => opts.suites.includes(x));
  if (wantsFds) {
    fdLimit = raiseChildFdLimit(opts.fdLimit);
    console.log(`open files: ${fdLimit.note}`);
    const needed =
      Math.max(opts.idleConnections, opts.compressionConnections, opts.pooledConnections) + 1_024;
    if (fdLimit.applied < needed) {
      console.log(
        `warning: the gateway may run out of file descriptors (limit ${fdLimit.applied}, ~${needed} needed for ` +
          `${opts.idleConnections} connections plus upstream sockets); EMFILE errors below are that limit, not the gateway`,
      );
    }
  }

  const scenarios: ScenarioResult[] = [];
  const idle: IdleScenarioResult[] = [];
  let compression: CompressionReport | null = null;
  const failures: Array<{ what: string; error: string }> = [];
  // First, while no child process is running: it measures this process alone.
  let ring: RingReport | null = null;
  if (opts.suites.includes('ring')) {
    console.log('\nhash ring (ns per pick, ours and the hashring package):');
    ring = runRingSuite(opts.ring);
    console.log(`  done in ${ring.elapsedMs} ms`);
  }
  if (opts.suites.includes('load')) {
    console.log('\nload (closed loop of tools/call):');
    await runLoadSuite(opts, profileFile, scenarios, failures);
  }
  if (opts.suites.includes('idle')) {
    console.log('\nidle connections (fresh gateway per transport):');
    await runIdleSuite(opts, idle, failures);
  }
  if (opts.suites.includes('compression')) {
    console.log('\nWebSocket compression (fresh gateway per setting):');
    compression = await runCompressionSuite(opts, failures);
  }
  let replicas: ReplicaReport | null = null;
  if (opts.suites.includes('replicas')) {
    console.log(`\ntools/call over 1 vs 3 replicas (streamable-http, ${opts.replicaSessions} sessions):`);
    replicas = await runReplicaSuite(opts, failures);
  }
  let wsUpstream: WsUpstreamReport | null = null;
  if (opts.suites.includes('ws-upstream')) {
    console.log('\nWebSocket client → WebSocket upstream, next to → Streamable HTTP upstream:');
    wsUpstream = await runWsUpstreamSuite(opts, failures);
  }
  let rateLimit: RateLimitReport | null = null;
  if (opts.suites.includes('rate-limit')) {
    console.log(`\nrate limits on vs off (${opts.replicaSessions} sessions, distinct client ids):`);
    rateLimit = await runRateLimitSuite(opts, failures);
  }
  let metrics: MetricsReport<ScenarioResult, RoundMedian> | null = null;
  if (opts.suites.includes('metrics')) {
    console.log('\ntools/call at 50 sessions with /metrics scraped every second, next to no scraping:');
    metrics = await runMetricsBench(opts, failures);
  }
  let pooledIdle: PooledIdleReport | null = null;
  if (opts.suites.includes('pooled-idle')) {
    console.log('\nidle sessions over a pooled stdio server-everything:');
    pooledIdle = await runPooledIdleSuite(opts, failures);
  }
  let flood: FloodReport | null = null;
  if (opts.suites.includes('flood')) {
    console.log('\ngood client while a flood runs:');
    flood = await runFloodSuite(here, opts.pairDurationMs, opts.logLevel, failures);
  }
  let tracing: TracingReport | null = null;
  if (opts.suites.includes('tracing')) {
    console.log(
      `\ntools/call with tracing off, ratio 1, ratio 0.1 (streamable-http, ${opts.tracingSessions} sessions):`,
    );
    const tracingProfile = (setting: TracingSetting, round: number) =>
      opts.profile && round > 0
        ? join(profileDir, `${stamp}-tracing-${setting}-r${round}.cpuprofile`)
        : undefined;
    tracing = await runTracingSuite(opts, failures, tracingProfile);
  }

  const added = addedLatency(scenarios);
  const wsHttp = wsVsHttp(scenarios);
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
    loadAverageAtEnd: loadavg().map(round),
    git: gitInfo(),
    note:
      `All processes share ${cpuCount} CPU(s): direct = load worker + upstream, gateway = load worker + gateway + ` +
      'upstream, so gateway figures include CPU contention a production deployment would not have.',
    options: opts,
    fdLimit,
    scenarios,
    addedLatency: added,
    wsVsHttp: wsHttp,
    budget,
    idle: {
      note: IDLE_NOTE,
      scenarios: idle,
      budget: idleBudget(idle),
    },
    compression,
    ring,
    replicas,
    wsUpstream,
    pooledIdle,
    flood,
    rateLimit,
    metrics,
    tracing,
    failures,
  };
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${stamp}.json`);
  const text = `${JSON.stringify(report, null, 2)}\n`;
  writeFileSync(file, text);
  writeFileSync(join(resultsDir, 'latest.json'), text);
  printSummary({
    scenarios,
    added,
    wsHttp,
    failures,
    budget,
    idle,
    idleBudget: report.idle.budget,
    compression,
    ring,
  });
  printTopology(replicas, wsUpstream, pooledIdle);
  if (flood) printFlood(flood);
  if (metrics) {
    console.log('\n/metrics scraped every second vs not (medians; same gateway):');
    for (const t of metrics.perTransport) {
      console.log(
        `  ${t.transport.padEnd(16)} scraped ${t.scraped.reqPerSec} req/s (p99 ${t.scraped.p99} ms), ` +
          `not ${t.plain.reqPerSec} req/s (p99 ${t.plain.p99} ms): ×${t.throughputRatio}`,
      );
    }
  }
  printTracing(tracing);
  console.log(`\nresults: ${file}`);
  const seconds = ((Date.now() - started.getTime()) / 1000).toFixed(1);
  console.log(`total ${seconds} s; load average at end ${report.loadAverageAtEnd.join(' ')}`);
}

function printTracing(t: TracingReport | null): void {
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
        (vs
          ? `  (÷ off ${vs.throughputRatio.toFixed(2)}×, p99 ${vs.p99DiffMs >= 0 ? '+' : ''}${vs.p99DiffMs.toFixed(2)} ms)`
          : '') +
        (m.errors ? `  errors ${m.errors}` : ''),
    );
  }
  console.log(`  ${t.exports.requests} OTLP exports, ${kb(t.exports.bytes)} KB`);
}

function printTopology(
  replicas: ReplicaReport | null,
  wsUpstream: WsUpstreamReport | null,
  pooled: PooledIdleReport | null,
): void {
  if (replicas && replicas.runs.length > 0) {
    console.log('\n1 vs 3 replicas (streamable-http through the gateway, distinct client ids):');
    for (const m of replicas.median) {
      const calls = replicas.runs
        .filter((r) => r.replicas === m.replicas && r.round > 0)
        .map((r) => r.callsPerReplica.join('/'))
        .join(', ');
      console.log(
        `  ${m.replicas} replica(s): median of ${m.rounds} ${m.reqPerSec} req/s  p50 ${fmt(m.p50)}  p99 ${fmt(m.p99)} ms` +
          `  calls per replica per round ${calls}` +
          (m.errors ? `  errors ${m.errors}` : ''),
      );
    }
    if (replicas.throughputRatio !== null) {
      console.log(
        `  3 ÷ 1: throughput ${replicas.throughputRatio.toFixed(2)}×, p99 ${replicas.p99DiffMs! >= 0 ? '+' : ''}${replicas.p99DiffMs!.toFixed(2)} ms`,
      );
    }
  }
  if (wsUpstream && wsUpstream.perLevel.length > 0) {
    console.log(
      '\nWebSocket client through the gateway: ws upstream vs streamable-http upstream (same fast upstream):',
    );
    for (const l of wsUpstream.perLevel) {
      console.log(
        `  @${String(l.sessions).padEnd(4)} ws upstream ${String(l.wsUpstream.reqPerSec).padStart(6)} req/s p50/p99 ` +
          `${l.wsUpstream.p50.toFixed(2)}/${l.wsUpstream.p99.toFixed(2)} ms   http upstream ` +
          `${String(l.httpUpstream.reqPerSec).padStart(6)} req/s p50/p99 ${l.httpUpstream.p50.toFixed(2)}/` +
          `${l.httpUpstream.p99.toFixed(2)} ms   → ${l.throughputRatio.toFixed(2)}×`,
      );
    }
  }
  if (pooled?.scenario) {
    const sc = pooled.scenario;
    const ps = pooled.perSession;
    console.log(`\npooled stdio server-everything (pool max ${pooled.childProcesses.max}):`);
    console.log(
      `  ${sc.established}/${sc.connections} sessions open, errors ${sc.errors}; per initialized session: ` +
        (ps
          ? `gateway ${kb(ps.gatewayRssBytes)} KB RSS, ${kb(ps.gatewayHeapBytes)} KB heap; children ${kb(ps.childrenRssBytes)} KB RSS`
          : '-') +
        `; child processes bare/initialized/after close ${pooled.childProcesses.after ?? '-'}/` +
        `${pooled.childProcesses.warm ?? '-'}/${pooled.childProcesses.afterClose ?? '-'}`,
    );
    for (const e of sc.errorSamples) console.log(`  error: ${e}`);
  }
}

const IDLE_NOTE_SHORT =
  'each idle session also holds an upstream lease in dedicated mode; upstream RSS is shown separately';
const IDLE_NOTE =
  'Each idle WebSocket / SSE connection is a gateway session, and in dedicated mode every session holds an ' +
  'upstream lease: an upstream connection object in the gateway (for a Streamable HTTP upstream, a HEAD on start; ' +
  'the upstream MCP session itself is created by initialize, which these idle connections never send). ' +
  'So the gateway figures include the lease, and the upstream (the fast one) is reported separately. ' +
  'perConnection = (after − before) / open connections, both samples after a full GC. Kernel socket buffers ' +
  'are not part of RSS.';

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
