/**
 * `npm run bench`: reads the options (bench/options.ts; `--help` lists them), runs the chosen
 * suites one after another (bench/suites/, in SUITES order), writes bench/results/<date>.json and
 * bench/results/latest.json, and prints each suite's summary.
 *
 * Processes: this orchestrator; per suite the fast upstream(s) and gateway(s) it measures; one
 * load worker per scenario (several idle workers per idle scenario). Each has its own event loop,
 * but they share the machine's cores — on a 2-core machine the direct baseline runs two busy
 * processes, the gateway path three, which the output states.
 */
import { mkdirSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { BENCH_DIR, installExitHandlers, raiseChildFdLimit, type FdLimitResult } from './children';
import { helpText, parseOptions, SUITE_NAMES, UsageError, type Options } from './options';
import { fileStamp, gitInfo, writeResults } from './results';
import type { Failures } from './servers';
import { round } from './stats';
import type { Suite, SuiteContext } from './suite';
import { compressionSuite } from './suites/compression';
import { floodSuite } from './suites/flood';
import { idleSuite } from './suites/idle';
import { loadSuite } from './suites/load';
import { metricsSuite } from './suites/metrics';
import { pooledIdleSuite } from './suites/pooled-idle';
import { rateLimitSuite } from './suites/rate-limit';
import { replicasSuite } from './suites/replicas';
import { ringSuite } from './suites/ring';
import { tracingSuite } from './suites/tracing';
import { wsUpstreamSuite } from './suites/ws-upstream';

/**
 * Every suite, in the order they run: ring first, while no child process runs; the suites that
 * hold thousands of connections or flood the gateway after the throughput ones. The results
 * JSON has their keys in this order too.
 */
const SUITES: Suite<any>[] = [
  ringSuite,
  loadSuite,
  idleSuite,
  compressionSuite,
  replicasSuite,
  wsUpstreamSuite,
  rateLimitSuite,
  metricsSuite,
  pooledIdleSuite,
  floodSuite,
  tracingSuite,
];

// A name in SUITE_NAMES (what --suites accepts) without its module here would run nothing.
const unregistered = SUITE_NAMES.filter((name) => !SUITES.some((s) => s.name === name));
if (unregistered.length > 0) throw new Error(`suites named but not in SUITES: ${unregistered.join(', ')}`);

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (!opts) {
    console.log(helpText('npm run bench --'));
    return;
  }
  installExitHandlers();
  const started = new Date();
  const cpuCount = cpus().length;
  // Other work on the machine skews every figure; the load average at start says how much there was.
  const loadAtStart = loadavg();
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
  const chosen = SUITES.filter((s) => opts.suites.includes(s.name));
  const fdLimit = chosen.some((s) => s.needsFds) ? raiseFdLimit(opts) : null;

  const failures: Failures = [];
  const ctx: SuiteContext = { opts, failures, profileFile: profiles(opts, fileStamp(started)) };
  // Every suite's keys, as they are when it does not run; then filled by those that do.
  const sections: Record<string, unknown> = {};
  for (const suite of SUITES) Object.assign(sections, suite.empty());
  const ran: Array<[Suite<any>, object]> = [];
  for (const suite of chosen) {
    console.log(`\n${suite.heading(opts)}`);
    const section = await suite.run(ctx);
    Object.assign(sections, section);
    ran.push([suite, section]);
  }

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
    ...sections,
    failures,
  };
  const file = writeResults('', started, report);
  for (const [suite, section] of ran) suite.summary?.(section);
  for (const f of failures) console.log(`\n${f.what} failed:\n${f.error}`);
  console.log(`\nresults: ${file}`);
  const seconds = ((Date.now() - started.getTime()) / 1000).toFixed(1);
  console.log(`total ${seconds} s; load average at end ${report.loadAverageAtEnd.join(' ')}`);
}

/** Idle connections need one fd each in the gateway: raise the children's limit (or say why not). */
function raiseFdLimit(opts: Options): FdLimitResult {
  const fdLimit = raiseChildFdLimit(opts.fdLimit);
  console.log(`open files: ${fdLimit.note}`);
  const needed = Math.max(opts.idleConnections, opts.compressionConnections, opts.pooledConnections) + 1_024;
  if (fdLimit.applied < needed) {
    console.log(
      `warning: the gateway may run out of file descriptors (limit ${fdLimit.applied}, ~${needed} needed for ` +
        `${opts.idleConnections} connections plus upstream sockets); EMFILE errors below are that limit, not the gateway`,
    );
  }
  return fdLimit;
}

/** With --profile: dist/bench/profiles/<stamp>-<name>.cpuprofile (large, machine-specific: not in results). */
function profiles(opts: Options, stamp: string): SuiteContext['profileFile'] {
  if (!opts.profile) return () => undefined;
  const dir = join(BENCH_DIR, 'profiles');
  mkdirSync(dir, { recursive: true });
  return (name) => join(dir, `${stamp}-${name}.cpuprofile`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`${err.message}\n(npm run bench -- --help lists the options)`);
      process.exit(2);
    }
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
