/**
 * The bench's child processes: forked with IPC, tracked by PID, and killed by PID when the
 * run ends — normally, on error, or on SIGINT/SIGTERM — so no gateway or upstream outlives it.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type {
  FailedMessage,
  ProfileReply,
  ProfileRequest,
  ReadyMessage,
  UsageReply,
  UsageRequest,
} from './ipc';

const TAIL_BYTES = 8 * 1024;

export interface BenchChild {
  name: string;
  process: ChildProcess;
  /** The last few KB of stdout+stderr, to report why a child failed. */
  output(): string;
}

const live = new Set<BenchChild>();
let interrupted = false;
/** RLIMIT_NOFILE children are started with (through `sh -c 'ulimit -n N; exec node …'`); unset = inherit. */
let childFdLimit: number | undefined;

export interface FdLimitResult {
  /** What the bench asked for. */
  wanted: number;
  /** The soft limit children run with. */
  applied: number;
  /** The orchestrator's own soft and hard limits. */
  inherited: { soft: number | null; hard: number | null };
  /** How: 'ulimit' (raised in the wrapper shell), 'hard-limit' (raised only as far as the hard limit), 'inherited'. */
  method: 'ulimit' | 'hard-limit' | 'inherited';
  note: string;
}

/**
 * Raises the open-files limit of every child forked from now on. A process may raise its soft
 * limit up to the hard limit (Node does that for itself at start-up), and only
 * CAP_SYS_RESOURCE raises the hard one: the wrapper shell tries `ulimit -n <wanted>` and
 * otherwise settles for the hard limit. What it got is returned, so the report states the
 * limit the gateway really had.
 */
export function raiseChildFdLimit(wanted: number): FdLimitResult {
  const sh = (script: string) =>
    execFileSync('sh', ['-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  const num = (text: string) => (/^\d+$/.test(text) ? Number(text) : null);
  let soft: number | null = null;
  let hard: number | null = null;
  try {
    soft = num(sh('ulimit -n'));
    hard = num(sh('ulimit -Hn'));
  } catch {
    // No sh: children inherit.
  }
  const inherited = { soft, hard };
  const probe = (n: number) => {
    try {
      return num(sh(`ulimit -n ${n} 2>/dev/null && ulimit -n`));
    } catch {
      return null;
    }
  };
  if (soft !== null && soft >= wanted) {
    return {
      wanted,
      applied: soft,
      inherited,
      method: 'inherited',
      note: `open-files limit already ${soft}`,
    };
  }
  const full = probe(wanted);
  if (full !== null && full >= wanted) {
    childFdLimit = wanted;
    return {
      wanted,
      applied: wanted,
      inherited,
      method: 'ulimit',
      note: `children run with ulimit -n ${wanted}`,
    };
  }
  const atHard = hard !== null ? probe(hard) : null;
  if (atHard !== null && hard !== null && (soft === null || hard > soft)) {
    childFdLimit = hard;
    return {
      wanted,
      applied: hard,
      inherited,
      method: 'hard-limit',
      note: `ulimit -n ${wanted} not permitted (hard limit ${hard}, no CAP_SYS_RESOURCE): children run with ${hard}`,
    };
  }
  return {
    wanted,
    applied: soft ?? 0,
    inherited,
    method: 'inherited',
    note: `ulimit -n ${wanted} not permitted (soft ${soft ?? '?'} = hard ${hard ?? '?'}, no CAP_SYS_RESOURCE to raise it): children run with the inherited ${soft ?? '?'}`,
  };
}

/** Where the compiled bench modules are (dist/bench): children are forked from here. */
export const BENCH_DIR = __dirname;

/** Forks `dist/bench/<module>.js` (e.g. `fast-upstream`) with an IPC channel. */
export function forkChild(
  name: string,
  module: string,
  args: string[] = [],
  execArgv: string[] = [],
): BenchChild {
  if (interrupted) throw new Error('interrupted');
  const modulePath = join(BENCH_DIR, `${module}.js`);
  // Children inherit nothing from the caller's environment but PATH: the bench states its
  // configuration explicitly, so a stray LOG_LEVEL or GATEWAY_CONFIG cannot skew a run.
  const env = { PATH: process.env.PATH ?? '', NODE_ENV: 'production' };
  const stdio: Array<'ignore' | 'pipe' | 'ipc'> = ['ignore', 'pipe', 'pipe', 'ipc'];
  const child =
    childFdLimit === undefined
      ? fork(modulePath, args, { execArgv, stdio, env })
      : // sh raises the limit and execs node in its place: same PID, same IPC channel (fd 3).
        spawn(
          'sh',
          [
            '-c',
            `ulimit -n ${childFdLimit} && exec "$0" "$@"`,
            process.execPath,
            ...execArgv,
            modulePath,
            ...args,
          ],
          { stdio, env },
        );
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail += chunk.toString('utf8');
    if (tail.length > TAIL_BYTES) tail = tail.slice(-TAIL_BYTES);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const entry: BenchChild = { name, process: child, output: () => tail };
  live.add(entry);
  child.once('exit', () => live.delete(entry));
  return entry;
}

/**
 * The first IPC message from `child` that `pick` turns into a value (undefined: not that one; a
 * throw rejects with it). Rejects when the child exits first, is not connected, or nothing
 * comes within `timeoutMs`; `what` names the awaited message in those errors.
 */
export function nextMessage<T>(
  child: BenchChild,
  pick: (msg: any) => T | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  if (!child.process.connected) return Promise.reject(new Error(`${child.name} is not connected`));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => done(new Error(`${child.name}: no ${what} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onMessage = (msg: unknown) => {
      let value: T | undefined;
      try {
        value = pick(msg);
      } catch (err) {
        return done(err as Error);
      }
      if (value !== undefined) done(undefined, value);
    };
    const onExit = (code: number | null, signal: string | null) =>
      done(
        new Error(`${child.name} exited (code ${code}, signal ${signal}) before ${what}:\n${child.output()}`),
      );
    const done = (err?: Error, value?: T) => {
      clearTimeout(timer);
      child.process.off('message', onMessage);
      child.process.off('exit', onExit);
      if (err) reject(err);
      else resolve(value!);
    };
    child.process.on('message', onMessage);
    child.process.once('exit', onExit);
  });
}

/** Resolves with the URL a child announces; rejects with its own error if it fails or exits first. */
export function waitReady(child: BenchChild, timeoutMs: number): Promise<string> {
  return nextMessage(
    child,
    (msg: ReadyMessage | FailedMessage) => {
      if (msg?.type === 'failed') throw new Error(`${child.name} failed to start:\n${msg.error}`);
      return msg?.type === 'ready' ? msg.url : undefined;
    },
    timeoutMs,
    'ready message',
  );
}

let usageSeq = 0;

/** Asks a server child for its memory and CPU use; undefined if it does not answer in time. */
export function usageOf(child: BenchChild, gc: boolean): Promise<UsageReply | undefined> {
  const seq = ++usageSeq;
  const reply = nextMessage(
    child,
    (msg: UsageReply) => (msg?.type === 'usage' && msg.seq === seq ? msg : undefined),
    5_000,
    'usage reply',
  ).catch(() => undefined);
  if (child.process.connected) child.process.send({ type: 'usage', seq, gc } satisfies UsageRequest);
  return reply;
}

/** Starts or stops the gateway's CPU profile; resolves with an error message or undefined. */
export function profile(
  child: BenchChild,
  phase: 'start' | 'stop',
  file?: string,
): Promise<string | undefined> {
  const reply = nextMessage(
    child,
    (msg: ProfileReply) =>
      msg?.type === 'profile' && msg.phase === phase ? { error: msg.error } : undefined,
    10_000,
    'profile reply',
  ).then(
    (r) => r.error,
    (err: Error) => err.message,
  );
  if (child.process.connected) child.process.send({ type: 'profile', phase, file } satisfies ProfileRequest);
  return reply;
}

/**
 * The highest RSS and heap a server child reports, polled every `intervalMs` (no GC) until
 * `stop()`; a poll still waiting for its answer is not doubled.
 */
export function samplePeak(
  child: BenchChild,
  intervalMs = 250,
): { peak: { rss: number; heapUsed: number }; stop(): void } {
  const peak = { rss: 0, heapUsed: 0 };
  let sampling = false;
  const timer = setInterval(() => {
    if (sampling) return;
    sampling = true;
    void usageOf(child, false).then((u) => {
      sampling = false;
      if (!u) return;
      peak.rss = Math.max(peak.rss, u.memory.rss);
      peak.heapUsed = Math.max(peak.heapUsed, u.memory.heapUsed);
    });
  }, intervalMs);
  return { peak, stop: () => clearInterval(timer) };
}

/** SIGTERM by PID, then SIGKILL if it has not exited within `graceMs`. */
export async function stopChild(child: BenchChild, graceMs = 3_000): Promise<void> {
  const p = child.process;
  if (p.exitCode !== null || p.signalCode !== null || p.pid === undefined) return;
  const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  signal(p.pid, 'SIGTERM');
  const timer = setTimeout(() => signal(p.pid!, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export function killAllChildren(sig: NodeJS.Signals = 'SIGKILL'): void {
  for (const child of live) if (child.process.pid !== undefined) signal(child.process.pid, sig);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

/** Makes sure every child dies with the orchestrator, however it ends. */
export function installExitHandlers(): void {
  process.on('exit', () => killAllChildren('SIGKILL'));
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      interrupted = true;
      console.error(`\n${sig}: stopping ${live.size} child process(es)`);
      killAllChildren('SIGTERM');
      setTimeout(() => {
        killAllChildren('SIGKILL');
        process.exit(130);
      }, 500);
    });
  }
}
