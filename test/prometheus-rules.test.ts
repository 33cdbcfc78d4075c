/**
 * The shipped Prometheus configuration and alert rules pass promtool: `check config` (which also
 * checks the rule file it loads), `check rules`, and the rules' unit tests (`test rules`). promtool
 * comes with Debian's `prometheus` package.
 *
 * @requires promtool (scripts/test-setup.mjs installs or names it before any test runs)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';

function promtool(...args: string[]): { status: number | null; output: string } {
  const run = spawnSync('promtool', args, { cwd: 'docker/prometheus', encoding: 'utf8', timeout: 60_000 });
  if (run.error && (run.error as NodeJS.ErrnoException).code === 'ENOENT') {
    assert.fail(
      'promtool is not installed (Debian: apt-get install prometheus); these checks cannot run without it',
    );
  }
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe('docker/prometheus', () => {
  test('promtool check config prometheus.yml', () => {
    const r = promtool('check', 'config', 'prometheus.yml');
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS: 5 rules found/);
  });

  test('promtool check rules alerts.yml: the five alerts', () => {
    const r = promtool('check', 'rules', 'alerts.yml');
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS: 5 rules found/);
  });

  test('promtool test rules alerts.test.yml: each alert fires past its threshold and clears', () => {
    const r = promtool('test', 'rules', 'alerts.test.yml');
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });
});
