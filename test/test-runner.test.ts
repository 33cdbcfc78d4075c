/**
 * The test runner reports every test that ran (scripts/run-tests.mjs, scripts/test-report-flush.cjs).
 * With --test-force-exit a file's process used to end before its last results reached the runner over
 * the pipe, which then counted fewer tests and exited 0: on Node 22, 2–7 of these 60 went unreported in
 * most runs, on 20 and 24 in some (nodejs/node#64833).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const PRELOAD = join(__dirname, '..', '..', 'scripts', 'test-report-flush.cjs');
const TESTS = 60;

test('every test of a file reaches the runner under --test-force-exit, run after run', () => {
  const dir = mkdtempSync(join(tmpdir(), 'report-flush-'));
  try {
    const file = join(dir, 'many.test.cjs');
    // Long names make large report frames, which is what stays buffered at the forced exit.
    writeFileSync(
      file,
      `const { test } = require('node:test');\nfor (let i = 0; i < ${TESTS}; i++) test('t' + i + ' ' + 'x'.repeat(2000), () => {});\n`,
    );
    // This process is itself a runner child: without this the nested runner would act as one.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    for (let run = 1; run <= 5; run++) {
      const result = spawnSync(
        process.execPath,
        ['--require', PRELOAD, '--test', '--test-reporter=tap', '--test-force-exit', file],
        { env, encoding: 'utf8', timeout: 60_000 },
      );
      assert.equal(result.status, 0, result.stderr);
      const reported = /^# tests (\d+)$/m.exec(result.stdout)?.[1];
      const passed = result.stdout.match(/^ok \d+ - t\d+ /gm)?.length ?? 0;
      assert.equal(reported, String(TESTS), `run ${run}: the runner counted ${reported} tests`);
      assert.equal(passed, TESTS, `run ${run}: ${passed} results arrived`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
