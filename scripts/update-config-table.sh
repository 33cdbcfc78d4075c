#!/usr/bin/env bash
# Regenerates README's configuration table in place from ENV_SETTINGS (see config-table.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json
node scripts/config-table.mjs > /tmp/config-table.$$.md
node - /tmp/config-table.$$.md <<'JS'
const { readFileSync, writeFileSync } = require('node:fs');
const table = readFileSync(process.argv[2], 'utf8');
const readme = readFileSync('README.md', 'utf8');
const heading = readme.indexOf('## Configuration reference');
const start = readme.indexOf('\n|', heading) + 1;
let end = start;
for (const line of readme.slice(start).split('\n')) {
  if (!line.startsWith('|')) break;
  end += line.length + 1;
}
writeFileSync('README.md', readme.slice(0, start) + table.replace(/\n+$/, '') + '\n' + readme.slice(end));
JS
rm -f /tmp/config-table.$$.md
npx prettier --write README.md >/dev/null
