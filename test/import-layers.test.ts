/**
 * The import-order check of `npm run lint` (.dependency-cruiser.cjs) catches what it is there for:
 * an upward import between layers, an import cycle, libs/ reaching into src/, a spec using test/.
 * Each case builds a small tree in a temp dir with the repo's own rules and runs the real CLI on it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';

const ROOT = join(__dirname, '..', '..');
const DEPCRUISE = join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

const dirs: string[] = [];
after(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/** Runs the check on a tree of `files` (path → source) and returns its exit status and report. */
function check(files: Record<string, string>): { status: number | null; report: string } {
  const dir = mkdtempSync(join(tmpdir(), 'layers-'));
  dirs.push(dir);
  copyFileSync(join(ROOT, '.dependency-cruiser.cjs'), join(dir, '.dependency-cruiser.cjs'));
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { module: 'Node16', moduleResolution: 'Node16', strict: true } }),
  );
  for (const [path, source] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), source);
  }
  const result = spawnSync(
    process.execPath,
    [DEPCRUISE, 'src', 'libs', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'],
    // Plain text whatever the terminal: CI=true alone turns the CLI's colours on.
    { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' } },
  );
  return { status: result.status, report: result.stdout + result.stderr };
}

const LIB = { 'libs/ring/index.ts': 'export const ring = 1;\n' };

describe('the import-order check', () => {
  test('passes a tree whose imports all point down the layers', () => {
    const { status, report } = check({
      ...LIB,
      'src/config/config.ts': "import { ring } from '../../libs/ring/index';\nexport const config = ring;\n",
      'src/session/session.ts':
        "import { config } from '../config/config';\nexport const session = config;\n",
      'src/transports/ws.ts': "import { session } from '../session/session';\nexport const ws = session;\n",
    });
    assert.equal(status, 0, report);
    // Every import was resolved and followed, so the pass is not an empty cruise.
    assert.match(report, /no dependency violations found \(4 modules, 3 dependencies cruised\)/);
  });

  test('fails on an upward import and names the rule and both files', () => {
    const { status, report } = check({
      ...LIB,
      'src/session/session.ts': 'export const session = 1;\n',
      'src/config/config.ts':
        "import { session } from '../session/session';\nexport const config = session;\n",
    });
    assert.notEqual(status, 0);
    assert.match(report, /layer-config: src\/config\/config\.ts → src\/session\/session\.ts/);
  });

  test('counts a type-only upward import too', () => {
    const { status, report } = check({
      ...LIB,
      'src/pool/port.ts': 'export interface Port { send(): void }\n',
      'src/upstream/conn.ts': "import type { Port } from '../pool/port';\nexport type Conn = Port;\n",
    });
    assert.notEqual(status, 0);
    assert.match(report, /layer-upstream: src\/upstream\/conn\.ts → src\/pool\/port\.ts/);
  });

  test('fails on a cycle inside one layer', () => {
    const { status, report } = check({
      ...LIB,
      'src/session/a.ts': "import { b } from './b';\nexport const a = () => b;\n",
      'src/session/b.ts': "import { a } from './a';\nexport const b = () => a;\n",
    });
    assert.notEqual(status, 0);
    assert.match(report, /no-cycles: src\/session\/a\.ts →/);
  });

  test('fails when libs/ imports the gateway', () => {
    const { status, report } = check({
      'src/core/ids.ts': 'export const id = 1;\n',
      'libs/ring/index.ts': "import { id } from '../../src/core/ids';\nexport const ring = id;\n",
    });
    assert.notEqual(status, 0);
    assert.match(report, /libs-stand-alone: libs\/ring\/index\.ts → src\/core\/ids\.ts/);
  });

  test('fails when a unit spec imports a test helper', () => {
    const { status, report } = check({
      ...LIB,
      'test/helpers/kit.ts': 'export const kit = 1;\n',
      'src/upstream/conn.spec.ts':
        "import { kit } from '../../test/helpers/kit';\nexport const spec = kit;\n",
    });
    assert.notEqual(status, 0);
    assert.match(report, /specs-stay-in-src: src\/upstream\/conn\.spec\.ts → test\/helpers\/kit\.ts/);
  });

  test('lets specs share src/testing/ and keeps the gateway itself off it', () => {
    const kit = { ...LIB, 'src/testing/wait.ts': 'export const wait = 1;\n' };
    const fromSpec = check({
      ...kit,
      'src/pool/pool.spec.ts': "import { wait } from '../testing/wait';\nexport const spec = wait;\n",
    });
    assert.equal(fromSpec.status, 0, fromSpec.report);
    const fromCode = check({
      ...kit,
      'src/pool/pool.ts': "import { wait } from '../testing/wait';\nexport const pool = wait;\n",
    });
    assert.notEqual(fromCode.status, 0);
    assert.match(fromCode.report, /testing-kit-for-specs-only: src\/pool\/pool\.ts → src\/testing\/wait\.ts/);
  });
});
