// Runs every compiled test file with Node's built-in test runner.
// `npm test` compiles first (pretest); unit specs sit beside the code, server suites in test/.
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ensureTools, requiredBy } from './test-setup.mjs';

const roots = ['dist/src', 'dist/libs', 'dist/test'];
// `--list` prints the selected files instead of running them (scripts/test-node-versions.sh batches them).
const list = process.argv[2] === '--list';
const only = process.argv.slice(list ? 3 : 2);
const files = [];
for (const root of roots) {
  if (!existsSync(root)) continue;
  for (const entry of readdirSync(root, { recursive: true })) {
    const path = join(root, String(entry));
    if (!/\.(spec|test)\.js$/.test(path)) continue;
    // A compiled file whose source was deleted or renamed is stale: tsc never removes it.
    if (!existsSync(path.slice('dist/'.length).replace(/\.js$/, '.ts'))) continue;
    if (only.length > 0 && !only.some((o) => path.includes(o))) continue;
    files.push(path);
  }
}
files.sort();
if (files.length === 0) {
  console.error('no test files found under dist/ — did the build run?');
  process.exit(1);
}
if (list) {
  console.log(files.join('\n'));
  process.exit(0);
}
// The programs the selected files drive (`@requires`): installed or named now, not failed on later.
const problem = ensureTools(requiredBy(files.map((f) => f.slice('dist/'.length).replace(/\.js$/, '.ts'))));
if (problem !== undefined) {
  console.error(problem);
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  [
    // Without it --test-force-exit can drop a file's last results and still exit 0 (see the file).
    '--require',
    fileURLToPath(new URL('./test-report-flush.cjs', import.meta.url)),
    '--test',
    '--test-concurrency=2',
    '--test-timeout=180000',
    '--test-force-exit',
    ...files,
  ],
  { stdio: 'inherit', env: { ...process.env, NODE_ENV: 'test' } },
);
process.exit(result.status ?? 1);
