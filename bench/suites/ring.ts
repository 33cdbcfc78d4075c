/**
 * Suite `ring`: how long a routing decision takes — our libs/hash-ring next to the npm package
 * `hashring` (libketama-compatible, MD5 points), at 3, 30 and 300 replicas, in the same process
 * and run. Runs in the orchestrator (no children, about two seconds) as part of `npm run bench`,
 * or alone: `node dist/bench/suites/ring.js [--ring-ms=40] [--ring-sizes=3,30,300]`, which writes
 * bench/results/ring-<date>.json and ring-latest.json.
 *
 * Every operation gets a new key (8,192 distinct session ids in turn), as a new session does:
 * `hashring`'s LRU cache (5,000 keys by default) then never hits, which is the per-session case.
 * Both rings have 160 points per replica (ours: 160 vnodes per weight; hashring: 40 MD5
 * digests × 4 points).
 */
import { cpus, loadavg } from 'node:os';
import LegacyHashRing from 'hashring';
import { HashRing } from '../../libs/hash-ring/src';
import { helpText, parseOptions, UsageError, type RingOptions } from '../options';
import { writeResults } from '../results';
import { median } from '../stats';
import { defineSuite } from '../suite';

export interface RingResult {
  replicas: number;
  library: 'hash-ring' | 'hashring';
  /** What one operation is, in the library's own API. */
  operation: string;
  /** CPU time of this process per operation, median of the rounds. */
  nsPerOp: number;
  /** Fastest round (CPU time): the least disturbed by other work on the machine. */
  bestNsPerOp: number;
  /** Wall-clock time per operation, median of the rounds: above nsPerOp when the cores were shared. */
  wallNsPerOp: number;
  /** 1e9 / nsPerOp: what one core does. */
  opsPerSec: number;
  /** CPU ns/op of the three rounds (the spread says how steady the machine was). */
  roundsNsPerOp: number[];
}

export interface RingReport {
  note: string;
  options: RingOptions;
  results: RingResult[];
  /** hashring ns/op ÷ ours, per replica count, for the primary pick and for 3 distinct replicas. */
  speedup: Array<{ replicas: number; primary: number; threeReplicas: number }>;
  /** CPU µs to add then remove one replica on a ring of the last size (ours merges, hashring rebuilds). */
  changeUs: { replicas: number; hashRing: number; hashring: number };
  elapsedMs: number;
  /** 1-minute load average before and after: above the core count, every figure is inflated. */
  loadAverage: { start: number; end: number };
}

const KEY_COUNT = 8192;
const ROUNDS = 3;
/** Warm-up per case before the rounds (JIT, caches). */
const WARMUP_MS = 10;

interface Case {
  replicas: number;
  library: RingResult['library'];
  operation: string;
  /** Runs `ops` operations starting at key index `from`; returns something derived from the results. */
  run(from: number, ops: number): number;
}

/** Keeps the results observable so the loops are not optimised away. */
let sink = 0;

function sessionKeys(): string[] {
  const keys: string[] = [];
  for (let i = 0; i < KEY_COUNT; i++) keys.push(`session-${(i * 2654435761) >>> 0}-${i.toString(36)}`);
  return keys;
}

function replicaIds(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `replica-${i}.upstream.internal:8080`);
}

interface Built {
  cases: Case[];
  /** The rings of the last size, reused for the add/remove timing. */
  last: { replicas: number; ours: HashRing; legacy: LegacyHashRing } | null;
}

/**
 * The measured cases. Each writes out its own loop around its one call on purpose: a loop shared
 * through a callback would measure the callback too (one call site for five functions is no
 * longer inlined), which is the size of what is measured here.
 */
function cases(sizes: number[], keys: string[]): Built {
  const mask = KEY_COUNT - 1;
  const out: Case[] = [];
  let last: Built['last'] = null;
  for (const n of sizes) {
    const ids = replicaIds(n);
    const ours = new HashRing();
    ours.addMany(ids.map((id) => [id]));
    const bounded = new HashRing({ boundedLoadFactor: 1.25 });
    bounded.addMany(ids.map((id) => [id]));
    // A steady state of live sessions, so acquire walks past replicas at the bound as it would.
    for (let i = 0; i < 20 * n; i++) bounded.acquire(keys[i & mask]);
    const legacy = new LegacyHashRing(ids);
    const three = Math.min(3, n);
    last = { replicas: n, ours, legacy };
    out.push(
      {
        replicas: n,
        library: 'hash-ring',
        operation: 'primary(key)',
        run(from, ops) {
          let s = 0;
          for (let i = 0; i < ops; i++) s += ours.primary(keys[(from + i) & mask])!.length;
          return s;
        },
      },
      {
        replicas: n,
        library: 'hash-ring',
        operation: `pick(key, ${three})`,
        run(from, ops) {
          let s = 0;
          for (let i = 0; i < ops; i++) s += ours.pick(keys[(from + i) & mask], three).length;
          return s;
        },
      },
      {
        replicas: n,
        library: 'hash-ring',
        operation: 'acquire(key) + release (bounded, c = 1.25)',
        run(from, ops) {
          let s = 0;
          for (let i = 0; i < ops; i++) {
            const id = bounded.acquire(keys[(from + i) & mask])!;
            bounded.release(id);
            s += id.length;
          }
          return s;
        },
      },
      {
        replicas: n,
        library: 'hashring',
        operation: 'get(key)',
        run(from, ops) {
          let s = 0;
          for (let i = 0; i < ops; i++) s += legacy.get(keys[(from + i) & mask])!.length;
          return s;
        },
      },
      {
        replicas: n,
        library: 'hashring',
        operation: `range(key, ${three})`,
        run(from, ops) {
          let s = 0;
          for (let i = 0; i < ops; i++) s += legacy.range(keys[(from + i) & mask], three).length;
          return s;
        },
      },
    );
  }
  return { cases: out, last };
}

/**
 * One round: batches of 1,024 operations until this process has used `ms` of CPU (or 10 × `ms`
 * of wall time has passed). Both times per operation are returned: on a shared machine wall
 * time includes the time the process waited for a core, CPU time mostly does not.
 */
function measure(c: Case, ms: number, offset: number): { cpuNs: number; wallNs: number } {
  const cpuBudgetUs = ms * 1000;
  const wallBudget = BigInt(ms) * 10_000_000n;
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  let ops = 0;
  let wall = 0n;
  let cpuUs = 0;
  do {
    sink ^= c.run(offset + ops, 1024);
    ops += 1024;
    wall = process.hrtime.bigint() - start;
    const used = process.cpuUsage(cpuStart);
    cpuUs = used.user + used.system;
  } while (cpuUs < cpuBudgetUs && wall < wallBudget);
  return { cpuNs: (cpuUs * 1000) / ops, wallNs: Number(wall) / ops };
}

/**
 * Adding then removing one replica on rings of n replicas: ours merges its points in, hashring
 * rebuilds and re-sorts its continuum (hundreds of ms at 300, so it is timed once, unwarmed).
 */
function changeCost(n: number, ours: HashRing, legacy: LegacyHashRing): RingReport['changeUs'] {
  // CPU time, like the picks.
  const time = (fn: () => void, reps: number) => {
    const start = process.cpuUsage();
    for (let i = 0; i < reps; i++) fn();
    const used = process.cpuUsage(start);
    return (used.user + used.system) / reps;
  };
  const oursChange = () => {
    ours.add('replica-new');
    ours.remove('replica-new');
  };
  oursChange(); // warm-up
  return {
    replicas: n,
    hashRing: round(time(oursChange, 20)),
    hashring: round(
      time(() => {
        legacy.add(['replica-new']);
        legacy.remove('replica-new');
      }, 1),
    ),
  };
}

const round = (n: number) => Math.round(n * 10) / 10;

export function runRingSuite(options: RingOptions): RingReport {
  const started = Date.now();
  const loadStart = loadavg()[0];
  const keys = sessionKeys();
  const built = cases(options.ringSizes, keys);
  const all = built.cases;
  for (const c of all) measure(c, WARMUP_MS, 0);
  // Rounds interleave the cases, so a slow moment on the machine is shared rather than pinned on one.
  const rounds: number[][] = all.map(() => []);
  const wallRounds: number[][] = all.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    all.forEach((c, i) => {
      const m = measure(c, options.ringMs, r * 7919);
      rounds[i].push(m.cpuNs);
      wallRounds[i].push(m.wallNs);
    });
  }
  const results: RingResult[] = all.map((c, i) => {
    const ns = median(rounds[i]);
    return {
      replicas: c.replicas,
      library: c.library,
      operation: c.operation,
      nsPerOp: round(ns),
      bestNsPerOp: round(Math.min(...rounds[i])),
      wallNsPerOp: round(median(wallRounds[i])),
      opsPerSec: Math.round(1e9 / ns),
      roundsNsPerOp: rounds[i].map(round),
    };
  });
  const ns = (n: number, library: string, prefix: string) =>
    results.find((r) => r.replicas === n && r.library === library && r.operation.startsWith(prefix))!.nsPerOp;
  const speedup = options.ringSizes.map((n) => ({
    replicas: n,
    primary: round(ns(n, 'hashring', 'get(') / ns(n, 'hash-ring', 'primary(')),
    threeReplicas: round(ns(n, 'hashring', 'range(') / ns(n, 'hash-ring', 'pick(')),
  }));
  const changeUs = changeCost(built.last!.replicas, built.last!.ours, built.last!.legacy);
  if (sink === 0.5) console.log('unreachable'); // sink is an integer; this only keeps it alive
  return {
    note:
      'CPU ns per routing decision (wallNsPerOp: wall clock), in the orchestrator process, one new key per ' +
      'operation (no cache hits); ' +
      '160 points per replica in both rings. hash-ring: libs/hash-ring; hashring: the npm package (MD5, libketama).',
    options,
    results,
    speedup,
    changeUs,
    elapsedMs: Date.now() - started,
    loadAverage: { start: round(loadStart), end: round(loadavg()[0]) },
  };
}

function printRing({ ring: report }: { ring: RingReport | null }): void {
  if (!report) return;
  const cores = cpus().length;
  if (report.loadAverage.start > cores / 2) {
    console.log(
      `warning: load average ${report.loadAverage.start} on ${cores} CPU(s) — other work shares the cores, ` +
        'so wall ns/op is high; CPU ns/op and the ratios between the libraries (measured interleaved) hold better',
    );
  }
  console.log(
    '\nreplicas  library     operation                                     CPU ns/op    best ns    wall ns      ops/s',
  );
  for (const r of report.results) {
    console.log(
      [
        String(r.replicas).padStart(8),
        r.library.padEnd(10),
        r.operation.padEnd(44),
        r.nsPerOp.toFixed(1).padStart(9),
        r.bestNsPerOp.toFixed(1).padStart(9),
        r.wallNsPerOp.toFixed(1).padStart(9),
        String(r.opsPerSec).padStart(10),
      ].join('  '),
    );
  }
  for (const s of report.speedup) {
    console.log(
      `  ${s.replicas} replicas: hashring/hash-ring = ${s.primary}× (primary), ${s.threeReplicas}× (3 replicas)`,
    );
  }
  const c = report.changeUs;
  console.log(
    `  add + remove one replica at ${c.replicas}: hash-ring ${c.hashRing} µs, hashring ${c.hashring} µs` +
      ` (${report.elapsedMs} ms for the suite)`,
  );
}

export const ringSuite = defineSuite<{ ring: RingReport | null }>({
  name: 'ring',
  empty: () => ({ ring: null }),
  heading: () => 'hash ring (ns per pick, ours and the hashring package):',
  // In this process, before any child is started: it measures this process alone.
  run: async ({ opts }) => {
    const ring = runRingSuite(opts.ring);
    console.log(`  done in ${ring.elapsedMs} ms`);
    return { ring };
  },
  summary: printRing,
});

const RING_FLAGS = ['ring-ms', 'ring-sizes'];

/** Alone: `node dist/bench/suites/ring.js [--ring-ms=…] [--ring-sizes=…]`, results in ring-<date>.json. */
function main(): void {
  const opts = parseOptions(process.argv.slice(2), RING_FLAGS);
  if (!opts) return console.log(helpText('node dist/bench/suites/ring.js', RING_FLAGS));
  const started = new Date();
  const ring = runRingSuite(opts.ring);
  printRing({ ring });
  const file = writeResults('ring-', started, { date: started.toISOString(), node: process.version, ring });
  console.log(`\nresults: ${file}`);
}

if (require.main === module) {
  try {
    main();
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`${err.message}\n(--help lists the options)`);
    process.exit(2);
  }
}
