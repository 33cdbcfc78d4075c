/**
 * The test command's set-up step (scripts/test-setup.mjs, run by `npm test`, scripts/run-tests.mjs
 * and .ci/run): with the programs a suite drives missing and no way to install them, it stops at
 * once with one line naming what to install, before any test runs; with them on PATH it says
 * nothing; as root with apt-get it installs them (a stand-in apt-get here, so the machine is
 * left alone).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';

const ROOT = resolve(__dirname, '..', '..');
const SETUP = join(ROOT, 'scripts', 'test-setup.mjs');
const RUN_TESTS = join(ROOT, 'scripts', 'run-tests.mjs');
const ALL_LINE =
  'test set-up: the tests need chromium, promtool, redis-server on PATH; install them ' +
  '(Debian/Ubuntu: sudo apt-get install chromium prometheus redis-server) and run the tests again';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** An empty directory to be the whole PATH. */
function emptyPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'test-setup-'));
  dirs.push(dir);
  return dir;
}

function executable(dir: string, name: string, script = '#!/bin/sh\nexit 0\n'): void {
  const file = join(dir, name);
  writeFileSync(file, script);
  chmodSync(file, 0o755);
}

function run(script: string, args: string[], path: string) {
  const started = Date.now();
  const r = spawnSync(process.execPath, [script, ...args], {
    cwd: ROOT,
    env: { PATH: path, HOME: process.env.HOME ?? '/tmp' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - started };
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

describe('test set-up step', () => {
  test('nothing on PATH and no apt-get: one line naming what to install, exit 1, at once', () => {
    const r = run(SETUP, [], emptyPath());
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `${ALL_LINE}\n`);
    assert.equal(r.stdout, '');
    assert.ok(r.ms < 5000, `${r.ms} ms`);
  });

  test('only what the selected files require is named', () => {
    const r = run(SETUP, ['test/prometheus-rules.test.ts'], emptyPath());
    assert.equal(r.status, 1);
    assert.equal(
      r.stderr,
      'test set-up: the tests need promtool on PATH; install them ' +
        '(Debian/Ubuntu: sudo apt-get install prometheus) and run the tests again\n',
    );
    const none = run(SETUP, ['test/host-guard.test.ts'], emptyPath());
    assert.equal(none.status, 0, 'a file that requires nothing needs nothing');
  });

  test('the runner stops before running any test, with the same line', () => {
    const r = run(RUN_TESTS, ['dist/test/dashboard.test', 'dist/test/prometheus-rules'], emptyPath());
    assert.equal(r.status, 1);
    assert.equal(
      r.stderr,
      'test set-up: the tests need chromium, promtool on PATH; install them ' +
        '(Debian/Ubuntu: sudo apt-get install chromium prometheus) and run the tests again\n',
    );
    assert.doesNotMatch(r.stdout, /^# tests/m, 'no test ran');
    assert.ok(r.ms < 5000, `${r.ms} ms`);
  });

  test('with the programs on PATH it passes silently', () => {
    const dir = emptyPath();
    for (const tool of ['chromium', 'promtool', 'redis-server']) executable(dir, tool);
    const r = run(SETUP, [], dir);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  test(
    isRoot
      ? 'as root with apt-get: the missing packages are installed, then it passes'
      : 'not root: apt-get is never tried, the line names what to install',
    () => {
      const dir = emptyPath();
      executable(dir, 'chromium');
      executable(dir, 'redis-server');
      // A stand-in apt-get: records its arguments; `install prometheus` puts a promtool on PATH.
      const calls = join(dir, 'apt-calls.log');
      executable(
        dir,
        'apt-get',
        `#!${process.execPath}\n` +
          `const fs = require('node:fs');\n` +
          `const args = process.argv.slice(2);\n` +
          `fs.appendFileSync(${JSON.stringify(calls)}, args.join(' ') + '\\n');\n` +
          `if (args.includes('install') && args.includes('prometheus')) {\n` +
          `  fs.writeFileSync(${JSON.stringify(join(dir, 'promtool'))}, '#!/bin/sh\\nexit 0\\n', { mode: 0o755 });\n` +
          `}\n`,
      );
      const r = run(SETUP, [], dir);
      if (isRoot) {
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stderr, 'test set-up: installing prometheus with apt-get (for promtool)\n');
        const log = readFileSync(calls, 'utf8').trim().split('\n');
        assert.deepEqual(log, ['update -qq', 'install -y -qq -o DPkg::Lock::Timeout=300 prometheus']);
      } else {
        assert.equal(r.status, 1);
        assert.match(r.stderr, /^test set-up: the tests need promtool on PATH; .*apt-get install prometheus/);
        assert.throws(() => readFileSync(calls), 'apt-get was not run');
      }
    },
  );

  test('an apt-get that installs nothing: the last line says what is still missing, exit 1', () => {
    const dir = emptyPath();
    executable(dir, 'apt-get');
    const r = run(SETUP, ['test/prometheus-rules.test.ts'], dir);
    assert.equal(r.status, 1);
    const lines = r.stderr.trim().split('\n');
    const last = lines[lines.length - 1];
    if (isRoot) {
      assert.deepEqual(lines.slice(0, -1), [
        'test set-up: installing prometheus with apt-get (for promtool)',
      ]);
      assert.equal(
        last,
        'test set-up: apt-get could not install promtool; install them (apt-get install prometheus) and run the tests again',
      );
    } else {
      assert.equal(lines.length, 1);
      assert.match(last, /apt-get install prometheus/);
    }
  });
});
