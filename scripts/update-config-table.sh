#!/usr/bin/env bash
# Regenerates README's configuration table in place from EnvSchema (see config-table.py).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import subprocess
table = subprocess.run(['python3', 'scripts/config-table.py'], capture_output=True, text=True, check=True).stdout
readme = open('README.md').read()
heading = readme.index('## Configuration reference')
start = readme.index('\n|', heading) + 1
length = 0
for line in readme[start:].split('\n'):
    if not line.startswith('|'):
        break
    length += len(line) + 1
open('README.md', 'w').write(readme[:start] + table.strip('\n') + '\n' + readme[start + length:])
PY
npx prettier --write README.md >/dev/null
