import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { Logger } from '@nestjs/common';
import { ErrorCode, type JsonRpcRequest } from '../../libs/protocol/src';
import type { ReplicaConfig } from '../config/gateway-config';
import {
  callTool,
  EVERYTHING,
  FAST_OPTIONS,
  handshake,
  pidAlive,
  RecordingSink,
  resultText,
  waitUntil,
} from './testing/upstream-kit';
import { liveStdioPids, StdioUpstream } from './stdio.upstream';

Logger.overrideLogger(['error']);

function everything(extra: Partial<{ args: string[]; command: string }> = {}): ReplicaConfig {
  return {
    transport: 'stdio',
    command: extra.command ?? process.execPath,
    args: extra.args ?? [EVERYTHING],
    env: {},
    weight: 1,
    id: 'everything-stdio',
  };
}

function groupMembers(pgid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '-g', String(pgid)], { encoding: 'utf8' })
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => n > 0);
  } catch {
    return []; // ps exits 1 when nothing matches
  }
}

function directChildren(): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(process.pid)], { encoding: 'utf8' })
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => n > 0);
  } catch {
    return [];
  }
}

const opened: StdioUpstream[] = [];
function open(replica: ReplicaConfig, options = FAST_OPTIONS): { up: StdioUpstream; sink: RecordingSink } {
  const up = new StdioUpstream(replica, options);
  const sink = new RecordingSink();
  up.sink = sink;
  opened.push(up);
  return { up, sink };
}

after(async () => {
  await Promise.all(opened.map((u) => u.close()));
});

describe('StdioUpstream with server-everything', () => {
  test('initialize, tools/list, echo with raw text, progress, sampling', async () => {
    const { up, sink } = open(everything());
    await up.start();
    const init = await handshake(up, sink);
    assert.ok(init.raw, 'stdio delivers the original line');
    assert.deepEqual(JSON.parse(init.raw!), init.message);

    up.send({ jsonrpc: '2.0', id: 2, method: 'tools/list' }, undefined);
    const list = await sink.response(2);
    const names = (list.message as { result: { tools: Array<{ name: string }> } }).result.tools.map(
      (t) => t.name,
    );
    assert.ok(names.includes('echo'));
    assert.ok(names.includes('trigger-sampling-request'), 'sampling tool is offered to a sampling client');

    callTool(up, 'echo-1', 'echo', { message: 'hello "stdio"\n' });
    const echo = await sink.response('echo-1');
    assert.equal(resultText(echo), 'Echo: hello "stdio"\n');
    assert.deepEqual(JSON.parse(echo.raw!), echo.message, 'raw text is the message as the server wrote it');

    callTool(up, 3, 'trigger-long-running-operation', { duration: 0.4, steps: 2 }, { progressToken: 'p-3' });
    const done = await sink.response(3);
    assert.match(resultText(done), /completed/);
    const progress = sink
      .notifications('notifications/progress')
      .filter(
        (r) => ((r.message as JsonRpcRequest).params as { progressToken?: unknown }).progressToken === 'p-3',
      );
    assert.equal(progress.length, 2, 'both progress notifications arrived before the result');
    assert.ok(sink.received.indexOf(progress[1]) < sink.received.indexOf(done));

    callTool(up, 4, 'trigger-sampling-request', { prompt: 'say hi', maxTokens: 10 });
    const sampling = await sink.request('sampling/createMessage');
    const samplingId = (sampling.message as JsonRpcRequest).id;
    up.send(
      {
        jsonrpc: '2.0',
        id: samplingId,
        result: {
          role: 'assistant',
          content: { type: 'text', text: 'hi from the test' },
          model: 'test-model',
        },
      },
      undefined,
    );
    const sampled = await sink.response(4);
    assert.match(resultText(sampled), /hi from the test/);
  });

  test('a cancelled or timed-out request is forgotten: no late error for it when the child dies', async () => {
    const { up, sink } = open(everything());
    await up.start();
    await handshake(up, sink);
    callTool(up, 'cancelled', 'trigger-long-running-operation', { duration: 5, steps: 5 });
    callTool(up, 'timed-out', 'trigger-long-running-operation', { duration: 5, steps: 5 });
    callTool(up, 'kept', 'trigger-long-running-operation', { duration: 5, steps: 5 });
    assert.equal(up.inFlightCount, 3);
    // What the session sends when the client cancels, and when it gives up (Session.abandonRequest).
    up.send(
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'cancelled' } },
      undefined,
    );
    up.send(
      {
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: 'timed-out', reason: 'gateway request timeout' },
      },
      undefined,
    );
    assert.equal(up.inFlightCount, 1, 'only the call still awaited counts');
    process.kill(up.pid!, 'SIGKILL');
    const failed = (await sink.response('kept')).message as { error?: { code: number } };
    assert.equal(failed.error?.code, ErrorCode.UpstreamUnavailable);
    assert.equal(up.inFlightCount, 0);
    const ids = sink.received.map((r) => (r.message as { id?: unknown }).id);
    assert.ok(!ids.includes('cancelled') && !ids.includes('timed-out'), 'nothing is invented for them');
  });

  test('kill -9 mid-session: in-flight request fails, child restarts, handshake is replayed', async () => {
    const { up, sink } = open(everything());
    await up.start();
    await handshake(up, sink);
    const firstPid = up.pid!;
    callTool(up, 'slow', 'trigger-long-running-operation', { duration: 5, steps: 5 });
    await new Promise((r) => setTimeout(r, 200));
    process.kill(firstPid, 'SIGKILL');

    const failed = await sink.response('slow');
    const error = (failed.message as { error?: { code: number; message: string } }).error;
    assert.equal(error?.code, ErrorCode.UpstreamUnavailable);
    assert.match(error!.message, /exited/);

    // Sent while the child is down: held until the restart and the replayed handshake.
    callTool(up, 'after', 'echo', { message: 'again' });
    const again = await sink.response('after');
    assert.equal(resultText(again), 'Echo: again');
    assert.notEqual(up.pid, firstPid);
    assert.ok(!pidAlive(firstPid));
    const initResponses = sink.received.filter((r) => (r.message as { id?: unknown }).id === 'init-1');
    assert.equal(initResponses.length, 1, 'the replayed initialize answer is swallowed');
    assert.ok(
      sink.received.every((r) => !String((r.message as { id?: unknown }).id ?? '').startsWith('gw-')),
      'no gateway-internal id reaches the sink',
    );
    assert.equal(sink.closedWith, null);
  });

  test('gives up after maxRestarts and tells the sink', async () => {
    const { up, sink } = open(everything({ args: ['-e', 'setTimeout(() => process.exit(3), 30)'] }), {
      ...FAST_OPTIONS,
      retryMinMs: 10,
      retryMaxMs: 20,
      maxRestarts: 2,
    });
    await up.start();
    await waitUntil(() => sink.closedWith !== null, 5000, 'upstreamClosed');
    assert.match(sink.closedWith!.message, /gave up after 2 restarts/);
    assert.equal(up.healthy(), false);
    up.send({ jsonrpc: '2.0', id: 1, method: 'ping' }, undefined);
    const r = await sink.response(1);
    assert.equal((r.message as { error: { code: number } }).error.code, ErrorCode.UpstreamUnavailable);
  });

  test('close() kills the whole process tree and leaves no child', async () => {
    const { up, sink } = open(
      everything({
        command: '/bin/sh',
        args: ['-c', `sleep 300 & exec "${process.execPath}" "${EVERYTHING}"`],
      }),
    );
    await up.start();
    await handshake(up, sink);
    const pid = up.pid!;
    assert.ok(groupMembers(pid).length >= 2, 'the server and its sleeping grandchild share a group');
    assert.ok(directChildren().includes(pid));
    await up.close();
    assert.ok(!pidAlive(pid));
    await waitUntil(() => groupMembers(pid).length === 0, 3000, 'process group to be empty');
    assert.ok(!directChildren().includes(pid));
    assert.ok(!liveStdioPids().includes(pid));
  });

  test('a command that does not exist makes start() reject', async () => {
    const { up } = open(everything({ command: '/nonexistent/mcp-server' }));
    await assert.rejects(up.start(), /cannot start/);
  });
});

describe('StdioUpstream framing', () => {
  // A tiny NDJSON peer: answers every request with a result of the requested size, written in
  // small pieces, with a partial line at the end of a chunk; prints noise on stderr.
  const PEER = `
    const rl = require('node:readline').createInterface({ input: process.stdin });
    rl.on('line', (line) => {
      const m = JSON.parse(line);
      if (m.id === undefined) return;
      process.stderr.write('got ' + m.method + '\\n');
      const size = (m.params && m.params.size) || 10;
      const out = JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { data: 'x'.repeat(size), echo: m.params } }) + '\\r\\n';
      let i = 0;
      const step = Math.max(1, Math.ceil(out.length / 7));
      const tick = () => {
        if (i >= out.length) return;
        process.stdout.write(out.slice(i, i + step));
        i += step;
        setImmediate(tick);
      };
      tick();
    });
  `;

  test('partial lines, CRLF, huge lines, and raw with embedded newlines', async () => {
    const { up, sink } = open(everything({ args: ['-e', PEER] }));
    await up.start();
    up.send({ jsonrpc: '2.0', id: 1, method: 'small', params: { size: 5 } }, undefined);
    const small = await sink.response(1);
    assert.equal((small.message as { result: { data: string } }).result.data, 'xxxxx');

    up.send({ jsonrpc: '2.0', id: 2, method: 'big', params: { size: 5_000_000 } }, undefined);
    const big = await sink.response(2);
    assert.equal((big.message as { result: { data: string } }).result.data.length, 5_000_000);

    // A pretty-printed raw body (as an HTTP client may send) must still go out as one line.
    const msg = { jsonrpc: '2.0' as const, id: 3, method: 'pretty', params: { size: 1, text: 'a\nb' } };
    up.send(msg, JSON.stringify(msg, null, 2));
    const pretty = await sink.response(3);
    assert.deepEqual((pretty.message as { result: { echo: unknown } }).result.echo, msg.params);
  });
});

describe('StdioUpstream: a child that answers and exits at once', () => {
  test('its last answer is delivered, not replaced by an "upstream unavailable" error', async () => {
    // Reads one request, answers it and exits in the same breath: the answer and the exit race.
    const script =
      "process.stdin.once('data', (d) => { const m = JSON.parse(String(d).split('\\n')[0]);" +
      " process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { last: 'words' } }) + '\\n');" +
      ' process.exit(0); });';
    const { up, sink } = open(
      {
        transport: 'stdio',
        command: process.execPath,
        args: ['-e', script],
        env: {},
        weight: 1,
        id: 'one-shot',
      },
      { ...FAST_OPTIONS, maxRestarts: 0 },
    );
    await up.start();
    up.send({ jsonrpc: '2.0', id: 'q', method: 'tools/list' }, undefined);
    const answer = await sink.waitFor((r) => (r.message as { id?: unknown }).id === 'q');
    assert.deepEqual((answer.message as { result?: unknown }).result, { last: 'words' });
  });
});
