/**
 * The last resort of `npm start` (src/main.ts): a promise rejection nothing handles is logged,
 * counted in mcp_gateway_internal_errors_total{entry="unhandled_rejection"}, and the gateway
 * keeps serving — its sessions included. Before, Node ended the process on the first one.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connectClient } from './helpers/clients';

const MAIN = resolve(__dirname, '../src/main.js');
const PRELOAD = resolve(__dirname, 'fixtures/reject-on-signal.js');

describe('npm start: an unhandled rejection is logged, counted, and the gateway keeps serving', () => {
  let child: ChildProcess;
  let url: string;
  let output = '';
  let exit: { code: number | null; signal: string | null } | undefined;
  const cwd = mkdtempSync(join(tmpdir(), 'unhandled-rejection-'));

  before(async () => {
    child = spawn(process.execPath, ['--require', PRELOAD, MAIN], {
      cwd, // no gateway.yaml here: the built-in demo service
      env: {
        PATH: process.env.PATH ?? '',
        HOST: '127.0.0.1',
        PORT: '0',
        LOG_LEVEL: 'info',
        LOG_FORMAT: 'json',
        STDIO_WARM_PROCESSES: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.once('exit', (code, signal) => (exit = { code, signal }));
    url = await new Promise<string>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`gateway did not start: ${output}`)), 30_000);
      const onData = (d: Buffer) => {
        output += d.toString();
        const m = /listening on (http:\/\/[^\s"]+)/.exec(output);
        if (m) {
          clearTimeout(timer);
          ok(m[1]);
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
    });
  });
  after(async () => {
    if (child && exit === undefined) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(cwd, { recursive: true, force: true });
  });

  /** The JSON log lines printed so far. */
  const logLines = () =>
    output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  test('two rejections: two error lines, the counter at 2, the session and /health still answer', async () => {
    const { client } = await connectClient(url, 'streamable');
    try {
      const before = await client.callTool({ name: 'echo', arguments: { text: 'before' } });
      assert.ok(JSON.stringify(before.content).includes('before'));

      const rejections = () => logLines().filter((l) => l.event === 'unhandled_rejection');
      // One signal at a time: two sent at once may be delivered as one.
      for (let i = 1; i <= 2; i++) {
        child.kill('SIGUSR2');
        const deadline = Date.now() + 10_000;
        while (rejections().length < i && exit === undefined && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      assert.equal(exit, undefined, `the gateway exited: ${output.slice(-2000)}`);
      const lines = rejections();
      assert.equal(lines.length, 2, output.slice(-2000));
      for (const line of lines) {
        assert.equal(line.level, 50, 'logged as an error');
        assert.equal(line.context, 'Process');
        assert.match(String(line.msg), /unhandled promise rejection \(kept serving/);
        assert.match(JSON.stringify(line.err), /deliberate rejection from the test/);
        assert.equal(typeof line.correlationId, 'string');
      }

      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(metrics, /^mcp_gateway_internal_errors_total\{entry="unhandled_rejection"\} 2$/m);
      assert.equal((await fetch(`${url}/health`)).status, 200);
      const after = await client.callTool({ name: 'echo', arguments: { text: 'after' } });
      assert.ok(JSON.stringify(after.content).includes('after'));
    } finally {
      await client.close().catch(() => undefined);
    }
  });
});
