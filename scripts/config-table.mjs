#!/usr/bin/env node
// Prints README's configuration table from ENV_SETTINGS (src/config/env-settings.ts), read from
// the compiled build: run `npx tsc -p tsconfig.json` first (scripts/update-config-table.sh does
// both and writes the table into README). `--json` prints the declaration as data instead.
// test/docs.test.ts fails when a variable is missing from README or from .env.example.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const compiled = fileURLToPath(new URL('../dist/src/config/env-settings.js', import.meta.url));
const { ENV_SETTINGS } = require(compiled);

const rows = Object.entries(ENV_SETTINGS).map(([name, { doc, ...declared }]) => ({
  name,
  default: 'default' in declared ? declared.default : undefined,
  doc,
}));

/** A default as README shows it: `—` for none, `(empty)` for an empty list or string. */
function shown(value) {
  if (value === undefined) return '—';
  if (Array.isArray(value)) return value.length === 0 ? '(empty)' : value.join(',');
  if (value === '') return '(empty)';
  return String(value);
}

if (process.argv.includes('--json')) {
  process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
} else {
  const lines = ['| variable | default | meaning |', '| --- | --- | --- |'];
  for (const row of rows) {
    lines.push(`| \`${row.name}\` | ${shown(row.default)} | ${row.doc.replaceAll('|', '\\|')} |`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
