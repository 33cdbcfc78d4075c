/**
 * SIGTERM: the gateway lets requests in flight finish (bounded by SHUTDOWN_GRACE_MS),
 * closes its streams, and leaves no stdio upstream process behind.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { EVERYTHING_ENTRY } from './helpers/everything';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((n) => n > 0);
  } catch {
    return [];
  }
}

test('SIGTERM drains a request in flight, then exits and kills its stdio upstreams', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-shutdown-'));
  const yamlPath = join(dir, 'gateway.yaml');
  writeFileSync(
    yamlPath,
    [
      'services:',
      '  everything:',
      '    replicas:',
      '      - transport: stdio',
      `        command: ${JSON.stringify(process.execPath)}`,
      `        args: [${JSON.stringify(EVERYTHING_ENTRY)}]`,
    ].join('\n'),
  );
  const gateway = spawn(process.execPath, [resolve(__dirname, '../src/main.js')], {
    env: {
      PATH: process.env.PATH ?? '',
      PORT: '0',
      LOG_LEVEL: 'info',
      GATEWAY_CONFIG: yamlPath,
      SHUTDOWN_GRACE_MS: '8000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`gateway did not start: ${output}`)), 20_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = /listening on (http:\/\/[^\s"]+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    };
    gateway.stdout!.on('data', onData);
    gateway.stderr!.on('data', onData);
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((ok) =>
    gateway.once('exit', (code, signal) => ok({ code, signal })),
  );

  const client = new Client({ name: 'shutdown-test', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`)));
  const upstreamPids = childrenOf(gateway.pid!);
  assert.ok(upstreamPids.length >= 1, 'the session spawned its stdio upstream');

  let signalled = 0;
  const call = client.callTool(
    { name: 'trigger-long-running-operation', arguments: { duration: 2, steps: 4 } },
    undefined,
    {
      timeout: 20_000,
      onprogress: () => {
        if (signalled++ === 0) gateway.kill('SIGTERM');
      },
    },
  );
  const result = await call;
  assert.match(
    JSON.stringify(result.content),
    /Long running operation completed/,
    'the request in flight finished',
  );
  const started = Date.now();
  const exit = await exited;
  assert.ok(Date.now() - started < 10_000, 'exited within the grace period');
  assert.ok(exit.code === 0 || exit.signal === 'SIGTERM', `clean exit (${JSON.stringify(exit)})`);
  await client.close().catch(() => undefined);
  for (const pid of upstreamPids) assert.equal(alive(pid), false, `stdio upstream ${pid} is gone`);
});
