/**
 * One load scenario: a load worker (bench/load-worker.ts) runs a closed loop of tools/call at N
 * sessions against a target while the orchestrator samples the servers' CPU over the measured
 * window and the gateway's memory before, during and after. Every suite that measures
 * throughput runs its scenarios through `runScenario`.
 */
import { forkChild, nextMessage, profile, samplePeak, stopChild, usageOf, type BenchChild } from './children';
import type {
  BenchTransport,
  LoadFailure,
  LoadJob,
  LoadResult,
  MemorySample,
  UsageReply,
  WindowMessage,
} from './ipc';
import type { Options } from './options';
import type { Server } from './servers';
import { fmt } from './stats';

export type TargetKind = 'direct' | 'gateway';
export type UpstreamKind = 'fast' | 'embedded-demo';

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

export interface ScenarioResult {
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

export interface ScenarioSpec {
  transport: BenchTransport;
  /** Default `gateway`. */
  target?: TargetKind;
  /** Default `fast`; `embedded-demo` calls the demo's echo tool. */
  upstream?: UpstreamKind;
  /** The target: the gateway's URL, or the upstream's for `direct`. */
  url: string;
  sessions: number;
  durationMs: number;
  warmupMs: number;
  /** The processes measured: the fast upstream always, the gateway when there is one. */
  upstreamChild: BenchChild;
  gateway?: BenchChild;
  /** Where this scenario's gateway CPU profile goes (with --profile). */
  profileFile?: string;
  /** tools/call params instead of the upstream's echo. */
  tool?: LoadJob['tool'];
  wsCompression?: boolean;
  /** Shown in the progress line. */
  label?: string;
  /** Endpoint path instead of the transport's default (e.g. `/ws/<service>`). */
  path?: string;
  /** Give every session its own client id `<prefix>-<i>` (so the ring spreads them). */
  clientIdPrefix?: string;
  /** Authenticate every session with this API key (X-API-Key). */
  apiKey?: string;
}

const FAST_TOOL = { name: 'echo', arguments: { message: 'hello' } };
/** The embedded demo upstream's echo tool (src/upstream/demo-server.ts). */
const DEMO_TOOL = { name: 'echo', arguments: { text: 'hello' } };
const PATHS: Record<BenchTransport, string> = { 'streamable-http': '/mcp', sse: '/sse', ws: '/ws' };

/** Handshake deadline + drain grace in the worker, plus slack for fork and IPC. */
const WORKER_SLACK_MS = 45_000;

/** The measured window of the suites that alternate pairs of scenarios over rounds. */
export function pairWindow(opts: Options): { durationMs: number; warmupMs: number } {
  return { durationMs: opts.pairDurationMs, warmupMs: opts.pairWarmupMs };
}

/** The processes of a scenario through `gateway` in front of `upstream`. */
export function through(
  gateway: Server,
  upstream: Server,
): Pick<ScenarioSpec, 'url' | 'upstreamChild' | 'gateway'> {
  return { url: gateway.url, upstreamChild: upstream.child, gateway: gateway.child };
}

async function runWorker(
  job: LoadJob,
  onWindow: (phase: WindowMessage['phase']) => void,
): Promise<LoadResult> {
  const worker = forkChild(`load worker (${job.transport}, ${job.sessions})`, 'load-worker');
  try {
    const result = nextMessage(
      worker,
      (msg: LoadResult | LoadFailure | WindowMessage) => {
        if (msg.type === 'window') onWindow(msg.phase);
        else if (msg.type === 'error') throw new Error(`load worker failed: ${msg.error}`);
        else if (msg.type === 'result') return msg;
        return undefined;
      },
      job.warmupMs + job.durationMs + WORKER_SLACK_MS,
      'result',
    );
    worker.process.send(job);
    return await result;
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

export async function runScenario(spec: ScenarioSpec): Promise<ScenarioResult> {
  const { transport, sessions, gateway, profileFile } = spec;
  const target = spec.target ?? 'gateway';
  const upstream = spec.upstream ?? 'fast';
  const job: LoadJob = {
    type: 'job',
    baseUrl: spec.url,
    transport,
    path: spec.path ?? PATHS[transport],
    sessions,
    warmupMs: spec.warmupMs,
    durationMs: spec.durationMs,
    tool: spec.tool ?? (upstream === 'fast' ? FAST_TOOL : DEMO_TOOL),
    ...(spec.wsCompression !== undefined ? { wsCompression: spec.wsCompression } : {}),
    ...(spec.clientIdPrefix !== undefined ? { clientIdPrefix: spec.clientIdPrefix } : {}),
    ...(spec.apiKey !== undefined ? { apiKey: spec.apiKey } : {}),
  };
  const memory: GatewayMemory | null = gateway ? {} : null;
  const counts: { before?: Record<string, number>; afterGc?: Record<string, number> } = {};
  let sampler: ReturnType<typeof samplePeak> | undefined;
  if (gateway && memory) {
    const before = await usageOf(gateway, true);
    memory.before = before?.memory;
    counts.before = before?.counts;
    sampler = samplePeak(gateway);
    memory.peak = sampler.peak;
  }
  // CPU of the servers over exactly the worker's measured window.
  const cpuSamples: Record<'start' | 'end', Promise<Array<UsageReply | undefined>> | undefined> = {
    start: undefined,
    end: undefined,
  };
  let profiling: Promise<string | undefined> | undefined;
  const onWindow = (phase: WindowMessage['phase']) => {
    cpuSamples[phase] = Promise.all([
      usageOf(spec.upstreamChild, false),
      gateway ? usageOf(gateway, false) : Promise.resolve(undefined),
    ]);
    if (gateway && profileFile) {
      const previous = profiling ?? Promise.resolve(undefined);
      profiling = previous.then(
        (err) => err ?? profile(gateway, phase === 'start' ? 'start' : 'stop', profileFile),
      );
    }
  };
  const label =
    `${transport} ${target}${upstream === 'fast' ? '' : ` (${upstream})`} @${sessions}` +
    (spec.label ? ` ${spec.label}` : '');
  process.stdout.write(`  ${label.padEnd(44)}`);
  let result: LoadResult;
  try {
    result = await runWorker(job, onWindow);
  } catch (err) {
    result = failedResult(job, err);
  } finally {
    sampler?.stop();
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
    cpuProfile: profileFile && profiling && !profileError ? profileFile : null,
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

/** Prints the error samples of the scenarios that have some, each under `title(scenario)`. */
export function printScenarioErrors<T extends { errorSamples: string[] }>(
  runs: T[],
  title: (run: T) => string,
): void {
  for (const r of runs.filter((x) => x.errorSamples.length > 0)) {
    console.log(`\nerrors in ${title(r)}:`);
    for (const e of r.errorSamples) console.log(`  ${e}`);
  }
}
