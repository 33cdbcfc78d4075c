/**
 * SIGTERM: the gateway lets requests in flight finish (bounded by SHUTDOWN_GRACE_MS),
 * closes its streams, and leaves no stdio upstream process behind.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'node:http';
import { test } from 'node:test';
import WebSocket from 'ws';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { EVERYTHING_ENTRY } from './helpers/everything';
import { inBatches, indexes } from './helpers/batches';

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

/** Starts `node dist/src/main.js` with `env`; resolves with its URL, its exit and its output. */
async function startChild(env: Record<string, string>) {
  const gateway = spawn(process.execPath, [resolve(__dirname, '../src/main.js')], {
    env: { PATH: process.env.PATH ?? '', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<{ code: number | null; signal: string | null }>((ok) =>
    gateway.once('exit', (code, signal) => ok({ code, signal })),
  );
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
  return { gateway, url, exited, output: () => output };
}

/** A WebSocket session: connect, wait for its session frame; `close` leaves it resumable (no 1000). */
function wsSession(url: string): Promise<WebSocket> {
  return new Promise((ok, fail) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`, 'mcp');
    ws.once('message', () => ok(ws));
    ws.once('error', fail);
  });
}

/** A legacy SSE session: GET /sse until the endpoint event; resolves with a function that drops it. */
function sseSession(url: string): Promise<() => void> {
  const u = new URL('/sse', url);
  return new Promise((ok, fail) => {
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname, headers: { accept: 'text/event-stream' } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
          if (text.includes('event: endpoint')) ok(() => req.destroy());
        });
        res.on('error', () => undefined);
      },
    );
    req.on('error', (err) => fail(err));
    req.end();
  });
}

test('SIGTERM after thousands of WebSocket and SSE sessions exits within SHUTDOWN_GRACE_MS, code 0', async () => {
  const COUNT = Number(process.env.SHUTDOWN_TEST_SESSIONS ?? 2000);
  const KEEP = 50;
  const GRACE_MS = 3000;
  const { gateway, url, exited, output } = await startChild({ SHUTDOWN_GRACE_MS: String(GRACE_MS) });
  try {
    // Opened and dropped without a 1000 close: each stays resumable, with its upstream, until shutdown.
    const sockets = await inBatches(indexes(COUNT), 100, () => wsSession(url));
    for (const ws of sockets.slice(KEEP)) ws.terminate();
    const drops = await inBatches(indexes(COUNT), 100, () => sseSession(url));
    for (const drop of drops.slice(KEEP)) drop();
    const health = await fetch(`${url}/health`).then((r) => r.status);
    assert.equal(health, 200, 'the gateway still serves after the sessions');
    const started = Date.now();
    gateway.kill('SIGTERM');
    const exit = await exited;
    const took = Date.now() - started;
    console.log(`shutdown after ${COUNT} WebSocket + ${COUNT} SSE sessions: ${took} ms`);
    assert.ok(took < GRACE_MS + 1500, `exited within SHUTDOWN_GRACE_MS + 1.5 s (took ${took} ms)`);
    assert.deepEqual(exit, { code: 0, signal: null }, output().slice(-2000));
    for (const ws of sockets.slice(0, KEEP)) ws.terminate();
    for (const drop of drops.slice(0, KEEP)) drop();
  } finally {
    if (alive(gateway.pid!)) gateway.kill('SIGKILL');
  }
});
