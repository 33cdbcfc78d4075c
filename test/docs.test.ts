/**
 * The configuration a user reads is the configuration the gateway has: every variable of the one
 * schema is in README's configuration reference and in .env.example (regenerate the table with
 * `scripts/update-config-table.sh`).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { EnvSchema } from '../src/config/env-settings';
import { ROOT } from './helpers/upstream-test-kit';

const variables = Object.keys(EnvSchema.shape);

test('README configuration reference lists every setting of the schema', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('## Configuration reference');
  assert.ok(start >= 0, 'README has a "Configuration reference" section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const missing = variables.filter((v) => !section.includes(`| \`${v}\``));
  assert.deepEqual(missing, [], `missing from README's configuration reference: ${missing.join(', ')}`);
});

test('.env.example documents every setting of the schema', () => {
  const example = readFileSync(join(ROOT, '.env.example'), 'utf8');
  const missing = variables.filter((v) => !new RegExp(`^#? ?${v}=`, 'm').test(example));
  assert.deepEqual(missing, [], `missing from .env.example: ${missing.join(', ')}`);
});
