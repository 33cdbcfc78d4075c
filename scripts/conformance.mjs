// Runs the official MCP conformance suite's server scenarios against the real gateway.
//
//   npm run conformance                 # compile, boot the gateway from dist/, run all suites
//   node scripts/conformance.mjs --direct
//        same suites against the fixture server behind the SDK's own Streamable HTTP
//        transport (no gateway): the baseline to compare gateway failures with
//   node scripts/conformance.mjs --suite stable,next --scenario tools-call-with-logging
//        only some suites / one scenario (for diagnosis)
//
// Suites (results under conformance-results/, which is git-ignored):
//   stable            @modelcontextprotocol/conformance 0.1.16, --suite all             (must pass)
//   next-2025-11-25   0.2.0-alpha, --suite all --spec-version 2025-11-25              (must pass)
//   next-2026-07-28   0.2.0-alpha, --requirements 2026-07-28                          (informational)
// conformance-results/summary.json records every scenario of every suite that ran
// (--direct: conformance-results/direct/).
// Exit status: 1 if a must-pass suite has a failing check, timed out or could not run.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  createWriteStream,
} from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
const require = createRequire(import.meta.url);

let RESULTS = join(root, 'conformance-results'); // --direct writes under conformance-results/direct/
/** Each CLI run is killed after this long (override: CONFORMANCE_CLI_TIMEOUT_MS). */
const CLI_TIMEOUT_MS = Number(process.env.CONFORMANCE_CLI_TIMEOUT_MS) || 8 * 60 * 1000;
const BOOT_TIMEOUT_MS = 60_000;
const CLOSE_TIMEOUT_MS = 15_000;
const FIXTURE = 'dist/test/fixtures/conformance-server.js';

const CLI = {
  stable: join(root, 'node_modules/@modelcontextprotocol/conformance/dist/index.js'),
  next: join(root, 'node_modules/conformance-next/dist/index.js'),
};

const SUITES = [
  {
    name: 'stable',
    label: '@modelcontextprotocol/conformance 0.1.16 --suite all',
    cli: CLI.stable,
    args: ['--suite', 'all'],
    required: true,
  },
  {
    name: 'next-2025-11-25',
    label: 'conformance 0.2.0-alpha --suite all --spec-version 2025-11-25',
    cli: CLI.next,
    args: ['--suite', 'all', '--spec-version', '2025-11-25'],
    required: true,
  },
  {
    name: 'next-2026-07-28',
    label: 'conformance 0.2.0-alpha --requirements 2026-07-28 (informational)',
    cli: CLI.next,
    args: ['--requirements', '2026-07-28', '--timeout', '15000'],
    required: false,
  },
];

// ---------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------

function parseArgs(argv) {
  const opts = { direct: false, suites: null, scenario: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--direct') opts.direct = true;
    else if (a === '--suite') opts.suites = argv[++i].split(',').map((s) => s.trim());
    else if (a === '--scenario') opts.scenario = argv[++i];
    else if (a === '-h' || a === '--help') {
      console.log(
        'usage: node scripts/conformance.mjs [--direct] [--suite stable,next-2025-11-25,next-2026-07-28] [--scenario NAME]',
      );
      process.exit(0);
    } else {
      console.error(`unknown argument: ${a}`);
      process.exit(2);
    }
  }
  if (opts.suites) {
    const known = new Set(SUITES.map((s) => s.name));
    // "next" is shorthand for both pre-release runs.
    opts.suites = opts.suites.flatMap((s) => (s === 'next' ? ['next-2025-11-25', 'next-2026-07-28'] : [s]));
    for (const s of opts.suites) {
      if (!known.has(s)) {
        console.error(`unknown suite: ${s} (known: ${[...known].join(', ')})`);
        process.exit(2);
      }
    }
  }
  return opts;
}

// ---------------------------------------------------------------------------
// Cleanup bookkeeping: everything started here is stopped here, also on errors/signals
// ---------------------------------------------------------------------------

const cleanups = [];
const liveChildren = new Set();
let cleaningUp = null;

function onCleanup(fn) {
  cleanups.push(fn);
}

async function cleanupAll() {
  if (cleaningUp) return cleaningUp;
  cleaningUp = (async () => {
    for (const child of liveChildren) killGroup(child, 'SIGKILL');
    for (const fn of cleanups.reverse()) {
      try {
        await withTimeout(Promise.resolve().then(fn), CLOSE_TIMEOUT_MS, 'cleanup');
      } catch (error) {
        console.error(`[conformance] cleanup: ${error instanceof Error ? error.message : error}`);
      }
    }
    await reapDescendants();
  })();
  return cleaningUp;
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    console.error(`\n[conformance] ${signal}: stopping`);
    void cleanupAll().finally(() => process.exit(130));
  });
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      timer.unref();
    }),
  ]);
}

/** Kills a child we spawned detached, together with its process group (npx → node@22). */
function killGroup(child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

/** Live (non-zombie) processes descending from this one: pid → command line. */
function descendants() {
  const found = new Map();
  if (!existsSync('/proc')) return found;
  const procs = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      procs.set(Number(entry), { ppid: Number(ppid), state });
    } catch {
      /* exited meanwhile */
    }
  }
  const mine = new Set([process.pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, { ppid }] of procs) {
      if (!mine.has(pid) && mine.has(ppid)) {
        mine.add(pid);
        grew = true;
      }
    }
  }
  mine.delete(process.pid);
  for (const pid of mine) {
    if (procs.get(pid).state === 'Z') continue;
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    } catch {
      continue;
    }
    found.set(pid, cmd);
  }
  return found;
}

/**
 * Backstop: whatever still descends from this process (e.g. a stdio upstream the gateway
 * did not stop) gets a grace period to exit after app.close(), then is killed by pid.
 */
async function reapDescendants(graceMs = 5000) {
  const deadline = Date.now() + graceMs;
  let left = descendants();
  while (left.size > 0 && Date.now() < deadline) {
    await new Promise((ok) => setTimeout(ok, 100));
    left = descendants();
  }
  for (const [pid, cmd] of left) {
    try {
      process.kill(pid, 'SIGKILL');
      console.error(`[conformance] still running ${graceMs} ms after shutdown, killed: ${pid} ${cmd}`);
    } catch {
      /* gone */
    }
  }
  return left.size;
}

// ---------------------------------------------------------------------------
// Targets: the gateway, or the fixture behind the SDK transport directly
// ---------------------------------------------------------------------------

async function startGateway() {
  if (!existsSync(join(root, 'dist/src/bootstrap.js')) || !existsSync(join(root, FIXTURE))) {
    throw new Error(
      'dist/ is missing the gateway or the fixture server: run `npx tsc -p tsconfig.json` first',
    );
  }
  const { bootstrap, listen } = require('../dist/src/bootstrap.js');
  const gateway = await withTimeout(
    bootstrap({
      env: { LOG_LEVEL: 'warn' },
      config: {
        host: '127.0.0.1',
        port: 0,
        services: {
          conformance: {
            replicas: [{ transport: 'stdio', command: process.execPath, args: [FIXTURE], cwd: root }],
          },
        },
        defaultService: 'conformance',
      },
    }),
    BOOT_TIMEOUT_MS,
    'gateway bootstrap',
  );
  onCleanup(() => gateway.app.close());
  const base = await withTimeout(listen(gateway, 0), BOOT_TIMEOUT_MS, 'gateway listen');
  if (!/^http:\/\/(127\.0\.0\.1|localhost):\d+$/.test(base))
    throw new Error(`gateway is not on loopback: ${base}`);
  return { kind: 'gateway', url: `${base}/mcp` };
}

/**
 * Baseline harness: the same fixture server behind the SDK's StreamableHTTPServerTransport
 * (one Server per session, in-memory event store, DNS-rebinding checks). What passes here
 * and fails through the gateway is the gateway's.
 */
async function startDirect() {
  const { StreamableHTTPServerTransport } = require('@modelcontextprotocol/sdk/server/streamableHttp.js');
  const { InMemoryEventStore } = require('@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js');
  const { isInitializeRequest } = require('@modelcontextprotocol/sdk/types.js');
  const { createConformanceServer } = require(`../${FIXTURE}`);

  const sessions = new Map();
  let port = 0;
  const jsonError = (res, status, code, message) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
  };
  const loopbackHost = (h) => h === `127.0.0.1:${port}` || h === `localhost:${port}`;
  const loopbackOrigin = (o) => /^https?:\/\/(127\.0\.0\.1|localhost)(:\d+)?$/.test(o);

  const http = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (url.pathname !== '/mcp') return jsonError(res, 404, -32000, 'Not found');
      if (!loopbackHost(req.headers.host ?? '')) return jsonError(res, 403, -32000, 'Invalid Host header');
      if (req.headers.origin && !loopbackOrigin(req.headers.origin)) {
        return jsonError(res, 403, -32000, 'Invalid Origin header');
      }
      const sid = req.headers['mcp-session-id'];
      let body;
      if (req.method === 'POST') {
        const chunks = [];
        for await (const chunk of req) chunks.push(chunk);
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return jsonError(res, 400, -32700, 'Parse error');
        }
      }
      if (typeof sid === 'string') {
        const transport = sessions.get(sid);
        if (!transport) return jsonError(res, 404, -32001, 'Session not found');
        return await transport.handleRequest(req, res, body);
      }
      if (req.method === 'POST' && body && !Array.isArray(body) && isInitializeRequest(body)) {
        const transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          eventStore: new InMemoryEventStore(),
          retryInterval: 1000,
          onsessioninitialized: (id) => sessions.set(id, transport),
        });
        transport.onclose = () => {
          if (transport.sessionId) sessions.delete(transport.sessionId);
        };
        const server = createConformanceServer();
        await server.connect(transport);
        return await transport.handleRequest(req, res, body);
      }
      return jsonError(res, 400, -32000, 'Bad Request: no valid session id');
    } catch (error) {
      console.error('[direct]', error);
      if (!res.headersSent) jsonError(res, 500, -32603, 'Internal error');
      else res.end();
    }
  });
  await new Promise((ok, fail) => {
    http.once('error', fail);
    http.listen(0, '127.0.0.1', ok);
  });
  port = http.address().port;
  onCleanup(async () => {
    for (const t of sessions.values()) await t.close().catch(() => {});
    http.closeAllConnections();
    await new Promise((ok) => http.close(() => ok()));
  });
  return { kind: 'direct', url: `http://127.0.0.1:${port}/mcp` };
}

// ---------------------------------------------------------------------------
// Running one suite
// ---------------------------------------------------------------------------

function runCli(suite, url, outDir, scenario) {
  const args = ['-y', 'node@22', suite.cli, 'server', '--url', url];
  if (scenario) args.push('--scenario', scenario);
  else args.push(...suite.args);
  args.push('-o', outDir);
  const logPath = join(RESULTS, `${suite.name}.log`);
  const log = createWriteStream(logPath);
  log.write(`$ npx ${args.join(' ')}\n\n`);
  const started = Date.now();
  return new Promise((done) => {
    const child = spawn('npx', args, {
      cwd: root,
      detached: true, // own process group, so the timeout can stop npx and node@22 together
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    });
    liveChildren.add(child);
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      log.write(d);
    });
    child.stderr.on('data', (d) => log.write(d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      console.error(
        `[conformance] ${suite.name}: CLI still running after ${Math.round(CLI_TIMEOUT_MS / 1000)} s, killing it`,
      );
      killGroup(child, 'SIGTERM');
      setTimeout(() => killGroup(child, 'SIGKILL'), 5000).unref();
    }, CLI_TIMEOUT_MS);
    child.on('error', (error) => {
      stdout += `\n[spawn error] ${error.message}\n`;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      liveChildren.delete(child);
      log.end();
      done({ code, signal, timedOut, stdout, logPath, seconds: Math.round((Date.now() - started) / 1000) });
    });
  });
}

// eslint-disable-next-line no-control-regex -- ANSI colour codes are control characters by definition
const STRIP_ANSI = /\x1B\[[0-9;]*m/g;

/** Per-scenario results from <outDir>/server-<scenario>-<timestamp>/checks.json. */
function readScenarioResults(outDir) {
  const results = {};
  if (!existsSync(outDir)) return results;
  for (const entry of readdirSync(outDir).sort()) {
    const m = /^server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$/.exec(entry);
    if (!m) continue;
    const file = join(outDir, entry, 'checks.json');
    if (!existsSync(file)) continue; // skipped scenarios leave an empty directory
    let checks;
    try {
      checks = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      results[m[1]] = {
        status: 'fail',
        passed: 0,
        failed: 1,
        warnings: 0,
        failures: [{ id: 'checks.json', error: String(error) }],
      };
      continue;
    }
    const count = (s) => checks.filter((c) => c.status === s).length;
    const failed = count('FAILURE');
    results[m[1]] = {
      status: failed > 0 ? 'fail' : checks.length === 0 ? 'empty' : 'pass',
      passed: count('SUCCESS'),
      failed,
      warnings: count('WARNING'),
      failures: checks
        .filter((c) => c.status === 'FAILURE' || c.status === 'WARNING')
        .map((c) => ({
          status: c.status,
          id: c.id,
          name: c.name,
          error: c.errorMessage ?? c.description,
          ...(c.details ? { details: c.details } : {}),
        })),
      dir: relative(root, join(outDir, entry)),
    };
  }
  return results;
}

/** Scenarios the CLI announced but that left no checks.json (crash, timeout): failures too. */
function announcedScenarios(stdout) {
  return [...stdout.replace(STRIP_ANSI, '').matchAll(/^=== Running scenario: (\S+) ===$/gm)].map((m) => m[1]);
}

/** The CLI's own closing summary: the per-scenario ✓/✗ lines, Total, and any "Not scored" block. */
function cliSummary(stdout) {
  const lines = stdout.replace(STRIP_ANSI, '').split('\n');
  const first = lines.findIndex(
    (l, i) =>
      /^[✓✗] \S+: \d+ passed, \d+ failed/.test(l) && lines.slice(i).some((x) => x.startsWith('Total:')),
  );
  return first < 0 ? lines.slice(-15).join('\n') : lines.slice(first).join('\n').trimEnd();
}

async function runSuite(suite, target, scenario) {
  const outDir = join(RESULTS, suite.name);
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  console.log(`\n━━━ ${suite.name}: ${suite.label}${scenario ? ` [--scenario ${scenario}]` : ''}`);
  console.log(`    target ${target.kind} ${target.url}`);
  const run = await runCli(suite, target.url, outDir, scenario);
  const scenarios = readScenarioResults(outDir);
  for (const name of announcedScenarios(run.stdout)) {
    if (!scenarios[name]) {
      scenarios[name] = {
        status: 'fail',
        passed: 0,
        failed: 1,
        warnings: 0,
        failures: [{ id: name, error: 'no checks.json written (scenario crashed or CLI was killed)' }],
      };
    }
  }
  const total = run.stdout.replace(STRIP_ANSI, '').match(/^Total: .*$/m)?.[0] ?? null;
  const failedScenarios = Object.entries(scenarios)
    .filter(([, r]) => r.status === 'fail')
    .map(([n]) => n);
  const ok =
    !run.timedOut && run.code === 0 && failedScenarios.length === 0 && Object.keys(scenarios).length > 0;

  console.log(cliSummary(run.stdout));
  // Failing checks of must-pass suites are listed here; informational ones get a table at the end.
  for (const [name, r] of suite.required ? Object.entries(scenarios) : []) {
    for (const f of r.failures.filter((x) => x.status !== 'WARNING')) {
      console.log(`    ✗ ${name} › ${f.name ?? f.id}: ${String(f.error).split('\n')[0].slice(0, 300)}`);
    }
  }
  const verdict = ok ? 'PASS' : suite.required ? 'FAIL' : 'informational';
  console.log(
    `    → ${verdict} (exit ${run.code ?? run.signal}${run.timedOut ? ', timed out' : ''}, ${run.seconds}s; full log ${relative(root, run.logPath)})`,
  );
  return {
    label: suite.label,
    required: suite.required,
    ok,
    exitCode: run.code,
    signal: run.signal,
    timedOut: run.timedOut,
    seconds: run.seconds,
    total,
    failedScenarios,
    scenarios,
    log: relative(root, run.logPath),
  };
}

function printTable(name, result) {
  const rows = Object.entries(result.scenarios).sort(([a], [b]) => a.localeCompare(b));
  if (rows.length === 0) return;
  const width = Math.max(...rows.map(([n]) => n.length), 8);
  console.log(`\n${name} per scenario:`);
  console.log(`  ${'scenario'.padEnd(width)}  result  pass  fail  warn`);
  for (const [n, r] of rows) {
    console.log(
      `  ${n.padEnd(width)}  ${r.status.padEnd(6)}  ${String(r.passed).padStart(4)}  ${String(r.failed).padStart(4)}  ${String(r.warnings).padStart(4)}`,
    );
  }
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  for (const path of Object.values(CLI)) {
    if (!existsSync(path)) throw new Error(`missing ${relative(root, path)}: run npm install`);
  }
  if (opts.direct) RESULTS = join(RESULTS, 'direct');
  mkdirSync(RESULTS, { recursive: true });
  const suites = SUITES.filter((s) => !opts.suites || opts.suites.includes(s.name));

  const target = opts.direct ? await startDirect() : await startGateway();
  console.log(`[conformance] ${target.kind} listening at ${target.url}`);

  const summary = {
    generatedAt: new Date().toISOString(),
    target: target.kind,
    url: target.url,
    scenario: opts.scenario,
    suites: {},
  };
  const summaryPath = join(RESULTS, 'summary.json');
  for (const suite of suites) {
    if (cleaningUp) break; // interrupted by a signal
    summary.suites[suite.name] = await runSuite(suite, target, opts.scenario);
    writeFileSync(summaryPath, `${JSON.stringify(summary, null, 2)}\n`);
  }

  for (const [name, r] of Object.entries(summary.suites)) if (!r.required) printTable(name, r);

  console.log('\n━━━ Summary');
  for (const [name, r] of Object.entries(summary.suites)) {
    const verdict = r.ok ? 'PASS' : r.required ? 'FAIL' : 'info';
    const n = Object.keys(r.scenarios).length;
    const failing = !r.failedScenarios.length
      ? ''
      : r.required
        ? `  failing: ${r.failedScenarios.join(', ')}`
        : `  (${n - r.failedScenarios.length}/${n} scenarios pass)`;
    console.log(
      `  ${verdict.padEnd(4)}  ${name.padEnd(16)} ${r.total ?? '(no Total line)'}${r.timedOut ? ' [timed out]' : ''}${failing}`,
    );
  }
  console.log(`  results: ${relative(root, summaryPath)}`);
  return Object.values(summary.suites).some((r) => r.required && !r.ok) ? 1 : 0;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  console.error(`[conformance] ${error instanceof Error ? (error.stack ?? error.message) : error}`);
  exitCode = 1;
} finally {
  await cleanupAll();
}
process.exit(exitCode);
