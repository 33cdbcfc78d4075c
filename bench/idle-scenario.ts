/**
 * The orchestrator's side of an idle-connection scenario: N WebSocket or legacy SSE
 * connections opened against the gateway by several idle workers (idle-worker.ts), held
 * idle, the gateway measured (after a full GC) before and after, then everything closed.
 *
 * The caller starts a fresh fast upstream and gateway per scenario (and stops them): SSE
 * sessions outlive their stream (resumable until the idle timeout), so a gateway that served
 * one scenario is not a clean baseline for the next.
 */
import { performance } from 'node:perf_hooks';
import { forkChild, nextMessage, samplePeak, stopChild, usageOf, type BenchChild } from './children';
import type { IdleCommand, IdleJob, IdleReport, MemorySample } from './ipc';
import { kb } from './stats';

export type IdleKind = 'ws' | 'sse';

export interface PerConnection {
  /** (after − before) / connections open, gateway process RSS. */
  gatewayRssBytes: number;
  /** Same for V8 heap used, both samples after a full GC. */
  gatewayHeapBytes: number;
  /** Same for memory outside the V8 heap (Buffers, zlib) the gateway's V8 knows about. */
  gatewayExternalBytes: number;
  /** Upstream process RSS growth per connection (its share of dedicated mode). */
  upstreamRssBytes: number;
}

export interface IdleScenarioResult {
  kind: IdleKind;
  /** WebSocket: whether the gateway had WS_COMPRESSION on (clients always offer permessage-deflate then). */
  compression: boolean | null;
  connections: number;
  workers: number;
  /** Connections that opened (WebSocket: session notification received; SSE: endpoint event received). */
  established: number;
  /** Failed connection attempts, failed warm-up calls, and connections dropped while idle. */
  errors: number;
  /** Open connections the gateway (or anything in between) closed while they idled. */
  dropped: number;
  errorSamples: string[];
  /** Wall clock from the workers starting until the last one had all its connections open. */
  establishMs: number | null;
  connectionsPerSec: number | null;
  /** How long the connections idled before the "after" sample. */
  heldMs: number;
  /**
   * From the first connection attempt until the gateway had an upstream lease for every
   * session (checked once all connections are open; null: not within 5 s after that).
   */
  leasesSettledMs: number | null;
  gateway: {
    /** After a full GC, before the measured connections (after a warm-up round of 100 opened and closed). */
    before?: MemorySample;
    /** Highest RSS / heap seen while the connections were opened and held (no GC). */
    peak?: { rss: number; heapUsed: number };
    /** After a full GC, all connections open and idle. */
    after?: MemorySample;
    /** After a full GC, once every connection has been closed (what stays behind). */
    afterClose?: MemorySample;
    /** Sessions, upstream leases, open fds and fd limit, at "after" and "afterClose". */
    counts?: Record<string, number>;
    countsAfterClose?: Record<string, number>;
  };
  upstream: { before?: MemorySample; after?: MemorySample; counts?: Record<string, number> };
  perConnection: PerConnection | null;
  /** Compression suite: every connection made one large tools/call (and acknowledged it), then idled. */
  warm?: {
    elapsedMs: number;
    /** TCP bytes received per large result on the client side. */
    bytesPerResult: number;
    /** Gateway after a full GC, after the warm-up. */
    after?: MemorySample;
    /** (afterWarm − before) / connections: what an idle connection costs once it has carried a large message. */
    perConnection: { gatewayRssBytes: number; gatewayHeapBytes: number; gatewayExternalBytes: number } | null;
  };
  /** Time for the workers to close everything. */
  closeMs: number | null;
  /** What the scenario's probe read at each sample (when it has one). */
  probes?: {
    after?: Record<string, number>;
    warm?: Record<string, number>;
    afterClose?: Record<string, number>;
  };
  /** Sum of the idle workers' RSS (client side, not the gateway's cost). */
  workerRssBytes: number;
}

export interface IdleScenarioParams {
  kind: IdleKind;
  connections: number;
  workers: number;
  holdMs: number;
  gateway: BenchChild;
  gatewayUrl: string;
  /** The upstream's process, when it is one of ours (a stdio upstream is the gateway's child). */
  upstream?: BenchChild;
  /** Extra figures read at "after", after the warm-up and at "afterClose" (e.g. the gateway's child processes). */
  probe?: () => Record<string, number>;
  /** WebSocket clients offer permessage-deflate. */
  wsCompression?: boolean;
  /** Record the gateway's compression setting in the result. */
  gatewayCompression?: boolean;
  /** Warm-up call made on every connection after the idle sample (compression suite). */
  warmTool?: { name: string; arguments: Record<string, unknown> };
  /** Progress line prefix. */
  label: string;
}

/** Deadline for one worker to open all its connections (and for the warm-up). */
const IDLE_DEADLINE_MS = 30_000;
const IDLE_CLOSE_DEADLINE_MS = 10_000;
/** Longest wait, after the hold, for every session's upstream lease. */
const LEASE_SETTLE_MS = 5_000;
/** Pause between the two GC'd samples of settledUsage. */
const SETTLE_MS = 400;
/** Connections opened and closed before the baseline sample. */
const WARMUP_CONNECTIONS = 100;
/** Connection attempts in flight per worker (4 workers → 256 at a time). */
const CONNECT_CONCURRENCY = 64;

/** The next report of `type` from a worker; rejects if it exits first or takes too long. */
const nextReport = (worker: BenchChild, type: IdleReport['type'], timeoutMs: number) =>
  nextMessage(worker, (msg: IdleReport) => (msg?.type === type ? msg : undefined), timeoutMs, type);

const perConn = (after: number | undefined, before: number | undefined, n: number) =>
  after === undefined || before === undefined || n === 0 ? 0 : Math.round((after - before) / n);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Usage after a full GC, taken twice with a pause between: V8 gives freed pages back to the OS
 * after the collection (concurrently), so the first sample's RSS still holds garbage that the
 * second does not. RSS at a few hundred connections is noisy anyway; heap figures are not.
 */
async function settledUsage(child: BenchChild | undefined) {
  if (!child) return undefined;
  await usageOf(child, true);
  await sleep(SETTLE_MS);
  return usageOf(child, true);
}

export async function runIdleScenario(p: IdleScenarioParams): Promise<IdleScenarioResult> {
  const result: IdleScenarioResult = {
    kind: p.kind,
    compression: p.kind === 'ws' ? (p.gatewayCompression ?? false) : null,
    connections: p.connections,
    workers: p.workers,
    established: 0,
    errors: 0,
    dropped: 0,
    errorSamples: [],
    establishMs: null,
    connectionsPerSec: null,
    heldMs: 0,
    leasesSettledMs: null,
    gateway: {},
    upstream: {},
    perConnection: null,
    closeMs: null,
    workerRssBytes: 0,
  };
  const samples = new Set<string>();
  const absorb = (reports: IdleReport[]) => {
    for (const r of reports) for (const e of r.errorSamples) if (samples.size < 8) samples.add(e);
  };
  process.stdout.write(`  ${p.label.padEnd(44)}`);

  // Warm-up round: a few connections opened (and warmed) and closed before the baseline, so
  // one-time costs (JIT, the upstream HTTP client's pool, first-use allocations) are not
  // charged to the measured connections.
  const warmup = forkChild(`idle warm-up (${p.kind})`, 'idle-worker');
  try {
    const ready = nextReport(warmup, 'idle-established', IDLE_DEADLINE_MS + 5_000);
    warmup.process.send({
      type: 'idle-job',
      baseUrl: p.gatewayUrl,
      kind: p.kind,
      connections: Math.min(WARMUP_CONNECTIONS, p.connections),
      concurrency: CONNECT_CONCURRENCY,
      deadlineMs: IDLE_DEADLINE_MS,
      ...(p.wsCompression !== undefined ? { wsCompression: p.wsCompression } : {}),
    } satisfies IdleJob);
    await ready;
    if (p.warmTool) {
      const warmed = nextReport(warmup, 'idle-warmed', IDLE_DEADLINE_MS);
      warmup.process.send({ type: 'idle-warm', tool: p.warmTool } satisfies IdleCommand);
      await warmed;
    }
    const closed = nextReport(warmup, 'idle-closed', IDLE_CLOSE_DEADLINE_MS);
    warmup.process.send({ type: 'idle-close' } satisfies IdleCommand);
    await closed;
  } catch (err) {
    samples.add(`warm-up round: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    await stopChild(warmup, 2_000);
  }
  await sleep(300);

  const [gwBefore, upBefore] = await Promise.all([settledUsage(p.gateway), settledUsage(p.upstream)]);
  result.gateway.before = gwBefore?.memory;
  result.upstream.before = upBefore?.memory;

  const sampler = samplePeak(p.gateway);
  result.gateway.peak = sampler.peak;

  const workers: BenchChild[] = [];
  try {
    const per = Math.floor(p.connections / p.workers);
    const t0 = performance.now();
    const established: Array<Promise<IdleReport>> = [];
    for (let i = 0; i < p.workers; i++) {
      const count = i === p.workers - 1 ? p.connections - per * (p.workers - 1) : per;
      const worker = forkChild(`idle worker ${i + 1} (${p.kind}, ${count})`, 'idle-worker');
      workers.push(worker);
      established.push(nextReport(worker, 'idle-established', IDLE_DEADLINE_MS + 5_000));
      worker.process.send({
        type: 'idle-job',
        baseUrl: p.gatewayUrl,
        kind: p.kind,
        connections: count,
        concurrency: CONNECT_CONCURRENCY,
        deadlineMs: IDLE_DEADLINE_MS,
        ...(p.wsCompression !== undefined ? { wsCompression: p.wsCompression } : {}),
      } satisfies IdleJob);
    }
    const opened = await Promise.all(established);
    result.establishMs = Math.round(performance.now() - t0);
    absorb(opened);
    result.established = opened.reduce((a, r) => a + r.open, 0);
    result.connectionsPerSec =
      result.establishMs > 0 ? Math.round((result.established / result.establishMs) * 1000) : null;

    // Sessions get their upstream lease asynchronously: wait (a bounded time) until every
    // session has one, so "after" measures settled sessions, not upstream connects in flight.
    const tHold = performance.now();
    for (let waited = 0; ; waited += 100) {
      const c = (await usageOf(p.gateway, false))?.counts ?? {};
      if (c.sessions !== undefined && c.upstreamLeases !== undefined && c.upstreamLeases >= c.sessions) {
        result.leasesSettledMs = Math.round(performance.now() - t0);
        break;
      }
      if (c.upstreamLeases === undefined || waited >= LEASE_SETTLE_MS) break;
      await sleep(100);
    }
    // Then idle.
    await sleep(p.holdMs);
    result.heldMs = Math.round(performance.now() - tHold);
    const [gwAfter, upAfter] = await Promise.all([settledUsage(p.gateway), settledUsage(p.upstream)]);
    result.gateway.after = gwAfter?.memory;
    result.gateway.counts = gwAfter?.counts;
    result.upstream.after = upAfter?.memory;
    result.upstream.counts = upAfter?.counts;
    if (p.probe) result.probes = { after: p.probe() };
    const n = result.established;
    result.perConnection = {
      gatewayRssBytes: perConn(gwAfter?.memory.rss, gwBefore?.memory.rss, n),
      gatewayHeapBytes: perConn(gwAfter?.memory.heapUsed, gwBefore?.memory.heapUsed, n),
      gatewayExternalBytes: perConn(gwAfter?.memory.external, gwBefore?.memory.external, n),
      upstreamRssBytes: perConn(upAfter?.memory.rss, upBefore?.memory.rss, n),
    };

    if (p.warmTool) {
      const warmed = workers.map((w) => nextReport(w, 'idle-warmed', IDLE_DEADLINE_MS));
      for (const w of workers) w.process.send({ type: 'idle-warm', tool: p.warmTool } satisfies IdleCommand);
      const reports = await Promise.all(warmed);
      absorb(reports);
      const gwWarm = await settledUsage(p.gateway);
      if (p.probe) result.probes = { ...result.probes, warm: p.probe() };
      const withBytes = reports.filter((r) => (r.bytesPerResult ?? 0) > 0);
      result.warm = {
        elapsedMs: Math.max(...reports.map((r) => r.elapsedMs)),
        bytesPerResult: withBytes.length
          ? Math.round(withBytes.reduce((a, r) => a + r.bytesPerResult!, 0) / withBytes.length)
          : 0,
        after: gwWarm?.memory,
        perConnection: gwWarm
          ? {
              gatewayRssBytes: perConn(gwWarm.memory.rss, gwBefore?.memory.rss, n),
              gatewayHeapBytes: perConn(gwWarm.memory.heapUsed, gwBefore?.memory.heapUsed, n),
              gatewayExternalBytes: perConn(gwWarm.memory.external, gwBefore?.memory.external, n),
            }
          : null,
      };
    }

    sampler.stop();
    const closed = workers.map((w) => nextReport(w, 'idle-closed', IDLE_CLOSE_DEADLINE_MS));
    const tClose = performance.now();
    for (const w of workers) w.process.send({ type: 'idle-close' } satisfies IdleCommand);
    const closedReports = await Promise.all(closed);
    result.closeMs = Math.round(performance.now() - tClose);
    absorb(closedReports);
    // The last reports carry each worker's running totals.
    result.errors = closedReports.reduce((a, r) => a + r.errors + r.dropped, 0);
    result.dropped = closedReports.reduce((a, r) => a + r.dropped, 0);
    result.workerRssBytes = closedReports.reduce((a, r) => a + r.workerRss, 0);
    // Let the gateway see every close before measuring what stays behind.
    await sleep(500);
    const gwClosed = await settledUsage(p.gateway);
    result.gateway.afterClose = gwClosed?.memory;
    result.gateway.countsAfterClose = gwClosed?.counts;
    if (p.probe) result.probes = { ...result.probes, afterClose: p.probe() };
  } catch (err) {
    result.errors++;
    samples.add((err as Error).message.split('\n')[0]);
  } finally {
    sampler.stop();
    await Promise.all(workers.map((w) => stopChild(w, 2_000)));
  }
  result.errorSamples = [...samples];
  const pc = result.perConnection;
  console.log(
    `${String(result.established).padStart(6)} open in ${result.establishMs ?? '-'} ms` +
      (pc ? `  ${kb(pc.gatewayRssBytes)} KB RSS, ${kb(pc.gatewayHeapBytes)} KB heap per conn` : '') +
      (result.warm?.perConnection
        ? `  (after the warm-up call: ${kb(result.warm.perConnection.gatewayRssBytes)} KB RSS)`
        : '') +
      (result.errors ? `  errors ${result.errors}` : ''),
  );
  return result;
}
