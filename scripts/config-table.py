#!/usr/bin/env python3
"""Prints README's configuration table from the JSDoc and defaults of EnvSchema (src/config/gateway-config.ts).

Run after adding a setting: python3 scripts/config-table.py, and paste the output under README's
"Configuration reference". test/docs.test.ts fails when a variable is missing there or in .env.example.
"""
import re
import sys

src = open('src/config/gateway-config.ts', encoding='utf8').read()
start = src.index('export const EnvSchema = z.object({')
body = src[start:src.index('\n});', start)].split('\n')
rows, comment, i = [], [], 0
while i < len(body):
    line = body[i].strip()
    if line.startswith('/**'):
        comment, text = [], line[3:]
        while '*/' not in text:
            comment.append(text.strip(' *'))
            i += 1
            text = body[i].strip()
        comment.append(text.replace('*/', '').strip(' *'))
        i += 1
        continue
    m = re.match(r'\s+([A-Z][A-Z0-9_]+):\s*(.*)', body[i])
    if m:
        name, rest, j = m.group(1), m.group(2), i
        while not rest.rstrip().endswith(',') and j + 1 < len(body):
            j += 1
            rest += ' ' + body[j].strip()
        d = re.search(r'\.default\((.*)\),?\s*$', rest)
        default = d.group(1).replace("'", '') if d else '—'
        if re.fullmatch(r'[\d_\s*]+', default):
            default = str(eval(default.replace('_', '')))
        if default == '[]':
            default = '(empty)'
        desc = ' '.join(c for c in comment if c).replace('|', '\\|')
        rows.append((name, default, desc))
        comment, i = [], j + 1
        continue
    i += 1
out = ['| variable | default | meaning |', '| --- | --- | --- |']
out += [f'| `{n}` | {d} | {c} |' for n, d, c in rows]
sys.stdout.write('\n'.join(out) + '\n')
