/**
 * The resilient client as a user gets it: `npm pack` of @mcp-gateway/client and of the
 * @mcp-gateway/protocol it depends on, both installed offline into a scratch project outside the
 * repository, an ESM consumer type-checked against the installed declarations and run against the
 * real gateway: the official SDK Client connects through the installed transport over each of the
 * three transports.
 *
 * No network: the tarballs are local files, and the scratch project takes the SDK (the peer
 * dependency) and `ws` from the repository's node_modules as `file:` links, whose own
 * dependencies npm leaves alone because they sit outside the project. The packages' dist/ is
 * built by `npm test`'s pretest (`npm run build:libs`); packing skips the prepack build so that
 * this suite never writes into libs/ while another suite loads the client from there.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { waitForNoChildren } from './helpers/leaks';

const run = promisify(execFile);
const REPO = resolve(__dirname, '../..');
const FIXTURE = join(__dirname, 'fixtures', 'stream-server.js');
const TSC = require.resolve('typescript/bin/tsc', { paths: [REPO] });

const STREAM_SERVICE = {
  services: {
    stream: { replicas: [{ transport: 'stdio' as const, command: process.execPath, args: [FIXTURE] }] },
  },
  defaultService: 'stream',
};

/** What `npm pack --json` says about one tarball. */
interface Packed {
  name: string;
  version: string;
  filename: string;
  files: Array<{ path: string }>;
}

/**
 * The child npm gets no npm_* variables: under `npm test` they carry the outer run's settings
 * (its prefix, its workspace), which would point the scratch install back at the repository.
 */
function npmEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
}

async function npm(cwd: string, args: string[]): Promise<string> {
  const { stdout } = await run(
    'npm',
    [...args, '--no-audit', '--no-fund', '--no-update-notifier', '--loglevel=error'],
    {
      cwd,
      env: npmEnv(),
      timeout: 60_000,
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  return stdout;
}

/**
 * The consumer a user would write (ESM, NodeNext resolution). It prints one JSON line: per
 * transport what the SDK Client saw, plus where Node found the two packages.
 */
const CONSUMER = `
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ResilientClientTransport, ResilientTransportError, type TransportKind } from '@mcp-gateway/client';

const url = process.argv[2];
const kinds: TransportKind[] = ['ws', 'streamable', 'sse'];
const runs = [];
for (const kind of kinds) {
  const transport = new ResilientClientTransport({
    url,
    clientId: 'client-package-test',
    transports: [kind],
    reconnect: { maxAttempts: 3 },
  });
  const client = new Client({ name: 'client-package-test', version: '1.0.0' });
  const errors: string[] = [];
  client.onerror = (err) => errors.push(err instanceof ResilientTransportError ? err.reason : err.message);
  await client.connect(transport);
  const { tools } = await client.listTools();
  const echo = await client.callTool({ name: 'echo', arguments: { text: 'hello over ' + kind } });
  const progress: number[] = [];
  await client.callTool({ name: 'stream', arguments: { count: 20, perTick: 5, intervalMs: 5 } }, undefined, {
    onprogress: (p) => progress.push(p.progress),
  });
  runs.push({
    kind,
    transport: transport.transport,
    session: typeof transport.sessionId === 'string',
    server: client.getServerVersion()?.name,
    tools: tools.map((t) => t.name).sort(),
    echo: (echo.content as Array<{ text: string }>)[0].text,
    progress,
    errors,
  });
  await client.close();
}
const clientEntry = fileURLToPath(import.meta.resolve('@mcp-gateway/client'));
const protocolEntry = createRequire(clientEntry).resolve('@mcp-gateway/protocol');
console.log(JSON.stringify({ runs, clientEntry, protocolEntry }));
`;

const TSCONFIG = {
  compilerOptions: {
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'es2022',
    strict: true,
    // The SDK's own declarations are not what is under test (and are slow to check).
    skipLibCheck: true,
    typeRoots: [join(REPO, 'node_modules/@types')],
    types: ['node'],
    outDir: 'out',
  },
  files: ['consumer.mts'],
};

describe('@mcp-gateway/client installed from its tarball', () => {
  let scratch: string;
  let app: string;
  let gw: RunningGateway;
  let client: Packed;

  before(async () => {
    scratch = await realpath(await mkdtemp(join(tmpdir(), 'mcp-gateway-client-')));
    app = join(scratch, 'app');
    const pack = async (): Promise<Packed[]> =>
      JSON.parse(
        await npm(REPO, [
          'pack',
          '--json',
          '--ignore-scripts',
          '--pack-destination',
          scratch,
          '--workspace=@mcp-gateway/protocol',
          '--workspace=@mcp-gateway/client',
        ]),
      ) as Packed[];
    // The gateway boots while npm packs.
    const [packed, started] = await Promise.all([pack(), startGateway(STREAM_SERVICE)]);
    gw = started;
    client = packed.find((p) => p.name === '@mcp-gateway/client')!;
    const protocol = packed.find((p) => p.name === '@mcp-gateway/protocol')!;
    assert.ok(client && protocol, `npm pack made ${packed.map((p) => p.name).join(', ')}`);

    await mkdir(app);
    const link = (name: string) => `file:${join(REPO, 'node_modules', name)}`;
    await writeFile(
      join(app, 'package.json'),
      JSON.stringify({
        name: 'client-package-scratch',
        private: true,
        type: 'module',
        dependencies: { '@modelcontextprotocol/sdk': link('@modelcontextprotocol/sdk'), ws: link('ws') },
      }),
    );
    await npm(app, [
      'install',
      '--offline',
      '--ignore-scripts',
      join(scratch, client.filename),
      join(scratch, protocol.filename),
    ]);
    await writeFile(join(app, 'tsconfig.json'), JSON.stringify(TSCONFIG));
    await writeFile(join(app, 'consumer.mts'), CONSUMER);
  });

  after(async () => {
    await gw?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
    assert.deepEqual(await waitForNoChildren(), [], 'stdio upstreams left running');
  });

  it('packs the compiled client with its declarations, README and sources, and no specs', async () => {
    const files = client.files.map((f) => f.path);
    for (const needed of ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'src/index.ts']) {
      assert.ok(files.includes(needed), `${needed} is in the tarball`);
    }
    assert.deepEqual(
      files.filter(
        (f) => /\.spec\.|tsbuildinfo/.test(f) || !/^(dist\/|src\/|package\.json$|README\.md$)/.test(f),
      ),
      [],
    );
    const manifest = JSON.parse(
      await readFile(join(app, 'node_modules/@mcp-gateway/client/package.json'), 'utf8'),
    ) as { exports: Record<string, { types: string; default: string }>; peerDependencies: object };
    for (const target of Object.values(manifest.exports['.'])) {
      assert.ok(files.includes(target.replace(/^\.\//, '')), `exports target ${target} is in the tarball`);
    }
    assert.deepEqual(Object.keys(manifest.peerDependencies), ['@modelcontextprotocol/sdk']);
  });

  it('installs as a copy in the scratch project, not a link to the repository', async () => {
    for (const name of ['@mcp-gateway/client', '@mcp-gateway/protocol']) {
      const dir = join(app, 'node_modules', name);
      assert.ok((await lstat(dir)).isDirectory(), `${name} is a directory, not a symlink`);
    }
  });

  it('connects the official SDK Client through the installed transport over WebSocket, Streamable HTTP and SSE', async () => {
    // Type-checked against the installed declarations (the package's `exports` types), then run.
    await run(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: app, timeout: 60_000 });
    const { stdout } = await run(process.execPath, [join(app, 'out', 'consumer.mjs'), gw.url], {
      cwd: app,
      timeout: 60_000,
    });
    const { runs, clientEntry, protocolEntry } = JSON.parse(stdout) as {
      runs: Array<Record<string, unknown>>;
      clientEntry: string;
      protocolEntry: string;
    };
    const installed = join(app, 'node_modules', '@mcp-gateway') + sep;
    assert.ok(clientEntry.startsWith(installed), `the client loaded from ${clientEntry}`);
    assert.ok(protocolEntry.startsWith(installed), `the protocol loaded from ${protocolEntry}`);
    assert.deepEqual(
      runs,
      (['ws', 'streamable', 'sse'] as const).map((kind) => ({
        kind,
        transport: kind,
        session: true,
        server: 'stream-fixture',
        tools: ['echo', 'stream'],
        echo: `hello over ${kind}`,
        progress: Array.from({ length: 20 }, (_, i) => i + 1),
        errors: [],
      })),
    );
  });
});
