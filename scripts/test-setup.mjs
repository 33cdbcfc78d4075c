// The test suite's set-up step: the programs some suites drive (Chromium, promtool, redis-server)
// must be on PATH before any test runs. Where they are missing and this is root with apt-get,
// they are installed (as CI does); otherwise the step stops at once with one line naming what to
// install — never a failure deep inside the suite.
//
// A test file says what it needs with a `@requires <tool>` line (see TOOLS). `npm test` runs this
// before compiling (pretest) for every test file; scripts/run-tests.mjs runs it for the files it
// selects; .ci/run runs it before anything else. `node scripts/test-setup.mjs [file…]`.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Each program a test may require, and the Debian package that brings it. */
export const TOOLS = {
  chromium: { apt: 'chromium' },
  promtool: { apt: 'prometheus' },
  'redis-server': { apt: 'redis-server' },
};

const REQUIRES = /@requires\s+([\w.-]+)/g;

/** The tools the given TypeScript test sources declare with `@requires`. */
export function requiredBy(sources) {
  const needs = new Set();
  for (const file of sources) {
    let text;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const m of text.matchAll(REQUIRES)) {
      if (!(m[1] in TOOLS))
        throw new Error(`${file}: @requires ${m[1]} is not a tool scripts/test-setup.mjs knows`);
      needs.add(m[1]);
    }
  }
  return [...needs].sort();
}

/** Every test source of the project (`*.spec.ts`, `*.test.ts` under src/, libs/, test/). */
export function allTestSources(root = '.') {
  const out = [];
  for (const dir of ['src', 'libs', 'test']) {
    let entries;
    try {
      entries = readdirSync(join(root, dir), { recursive: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      const path = join(root, dir, String(entry));
      if (/\.(spec|test)\.ts$/.test(path) && !path.includes('node_modules')) out.push(path);
    }
  }
  return out.sort();
}

/** Whether `name` is an executable file in a directory of PATH. */
export function onPath(name, path = process.env.PATH ?? '') {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const file = join(dir, name);
    try {
      if (!statSync(file).isFile()) continue;
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

function aptCommand(packages) {
  return `apt-get install ${packages.join(' ')}`;
}

/**
 * Makes sure every tool in `needs` is on PATH: returns undefined when they are (after installing
 * them with apt-get where this process may), else the one line to print.
 */
export function ensureTools(needs, { log = (line) => console.error(line) } = {}) {
  let missing = needs.filter((tool) => !onPath(tool));
  if (missing.length === 0) return undefined;
  const packages = [...new Set(missing.map((tool) => TOOLS[tool].apt))];
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (root && onPath('apt-get')) {
    log(`test set-up: installing ${packages.join(' ')} with apt-get (for ${missing.join(', ')})`);
    const quiet = { stdio: ['ignore', 'ignore', 'inherit'], timeout: 15 * 60_000 };
    // Another apt run (a colleague's, unattended upgrades) may hold the lock: wait for it a while.
    spawnSync('apt-get', ['update', '-qq'], quiet);
    spawnSync('apt-get', ['install', '-y', '-qq', '-o', 'DPkg::Lock::Timeout=300', ...packages], {
      ...quiet,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    missing = needs.filter((tool) => !onPath(tool));
    if (missing.length === 0) return undefined;
    return `test set-up: apt-get could not install ${missing.join(', ')}; install them (${aptCommand([
      ...new Set(missing.map((tool) => TOOLS[tool].apt)),
    ])}) and run the tests again`;
  }
  return `test set-up: the tests need ${missing.join(', ')} on PATH; install them (Debian/Ubuntu: sudo ${aptCommand(
    packages,
  )}) and run the tests again`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const files = process.argv.slice(2);
  const problem = ensureTools(requiredBy(files.length > 0 ? files : allTestSources()));
  if (problem !== undefined) {
    console.error(problem);
    process.exit(1);
  }
}
