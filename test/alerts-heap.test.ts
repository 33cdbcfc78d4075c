/**
 * MemoryPressure judges the V8 heap against the limit it may grow to (heap_size_limit), not its
 * current size: a fresh, idle gateway raises nothing, one whose heap is held near its limit
 * raises the alert on /dashboard/snapshot. The gateway runs in a process of its own
 * (test/fixtures/heap-gateway.ts) with a small heap limit, sampling every 100 ms.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

interface Frame {
  heap: { used: number; total: number; limit: number };
  alerts: Array<{ name: string; value?: number; summary: string }>;
  recentAlerts: Array<{ type: string; name: string }>;
}

const FIXTURE = join(__dirname, 'fixtures', 'heap-gateway.js');

describe('MemoryPressure: V8 heap used against its limit', () => {
  let child: ChildProcess;
  let url: string;
  const lines: Array<Record<string, unknown>> = [];
  let waiting: (() => void) | undefined;

  /** The next line the child prints that has `key`. */
  async function lineWith(key: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = lines.find((l) => key in l);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no "${key}" from the gateway within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        waiting = r;
        setTimeout(r, 100);
      });
    }
  }

  const snapshot = async (): Promise<Frame> =>
    (await (await fetch(`${url}/dashboard/snapshot`)).json()) as Frame;

  before(async () => {
    // 128 MiB of old space and 1 MiB semi-spaces: a limit of ~131 MiB that the test can fill.
    child = spawn(process.execPath, ['--max-old-space-size=128', '--max-semi-space-size=1', FIXTURE], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let pending = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) !== -1) {
        lines.push(JSON.parse(pending.slice(0, nl)) as Record<string, unknown>);
        pending = pending.slice(nl + 1);
      }
      waiting?.();
    });
    url = String((await lineWith('url', 30_000)).url);
  });
  after(async () => {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin!.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  });

  test('a fresh gateway at rest raises no alert', async () => {
    // Twenty samples and more (every 100 ms); ALERT_HEAP_FOR_MS=0, so one breached sample would raise it.
    await new Promise((r) => setTimeout(r, 2500));
    const frame = await snapshot();
    assert.ok(frame.heap.limit > 100 * 2 ** 20, `limit ${frame.heap.limit}`);
    assert.ok(frame.heap.used < 0.8 * frame.heap.limit, 'the idle heap is far from its limit');
    assert.deepEqual(frame.alerts, []);
    assert.deepEqual(frame.recentAlerts, [], 'nothing was raised since the start either');
  });

  test('a gateway whose heap is held near its limit raises MemoryPressure', async () => {
    child.stdin!.write('fill 0.85\n');
    const filled = Number((await lineWith('filled', 30_000)).filled);
    assert.ok(filled >= 0.85, `filled to ${filled}`);
    const deadline = Date.now() + 10_000;
    let frame = await snapshot();
    while (!frame.alerts.some((a) => a.name === 'MemoryPressure') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      frame = await snapshot();
    }
    const alert = frame.alerts.find((a) => a.name === 'MemoryPressure');
    assert.ok(alert, `no MemoryPressure alert: ${JSON.stringify(frame.alerts)}`);
    assert.ok(alert.value! > 0.8 && alert.value! < 1, `value ${alert.value}`);
    assert.match(alert.summary, /of its limit/);
    // The figure is used ÷ limit, as the frame's own heap figures say.
    assert.ok(Math.abs(frame.heap.used / frame.heap.limit - alert.value!) < 0.05);
  });
});
