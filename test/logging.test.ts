/**
 * Correlated logs: every line of one client call carries the same correlation id, with the
 * session id, client id and trace id, on each client transport; a caller's sane `x-request-id`
 * is the correlation id; module levels (LOG_LEVELS) change live through /admin/log-levels.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { PrettyLogStream } from '../src/telemetry/logging/pretty-stream';
import { CLIENT_TRANSPORTS, connectClient } from './helpers/clients';
import { startGateway, type RunningGateway } from './helpers/gateway';

type Line = Record<string, unknown>;

/** A pino destination that keeps every JSON line. */
class LineSink extends Writable {
  readonly lines: Line[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    for (const l of chunk.toString().split('\n')) if (l !== '') this.lines.push(JSON.parse(l) as Line);
    done();
  }
}

const TOKEN = 'log-admin-token-0123456789';
const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/** The lines of the tools/call whose `client request` line names `traceId`: all lines with its correlation id. */
function linesOfCall(sink: LineSink, traceId: string): Line[] {
  const first = sink.lines.find(
    (l) => l.msg === 'client request' && l.method === 'tools/call' && l.traceId === traceId,
  );
  assert.ok(first, `no "client request" line for trace ${traceId}`);
  return sink.lines.filter((l) => l.correlationId === first.correlationId);
}

describe('correlated logs', () => {
  const sink = new LineSink();
  let gw: RunningGateway;

  before(async () => {
    // Only Session at debug: the per-module level, not a global debug.
    gw = await startGateway(
      {},
      { LOG_LEVEL: 'warn', LOG_LEVELS: 'Session=debug', ADMIN_TOKEN: TOKEN },
      { logStream: sink },
    );
  });
  after(async () => {
    await gw?.close();
  });

  for (const transport of CLIENT_TRANSPORTS) {
    test(`${transport}: every line of one call carries one correlation id, the session, client and trace`, async () => {
      const { client } = await connectClient(gw.url, transport);
      try {
        const traceId = hex(16);
        const r = await client.callTool({
          name: 'echo',
          arguments: { text: `logged over ${transport}` },
          _meta: { traceparent: `00-${traceId}-${hex(8)}-01` },
        });
        assert.ok(JSON.stringify(r.content).includes(`logged over ${transport}`));
        const lines = linesOfCall(sink, traceId);
        assert.deepEqual(
          lines.map((l) => l.msg),
          ['client request', 'response delivered'],
        );
        const [req] = lines;
        assert.equal(typeof req!.correlationId, 'string');
        assert.equal(typeof req!.sessionId, 'string');
        assert.equal(req!.clientId, 'anonymous');
        for (const l of lines) {
          assert.equal(l.context, 'Session');
          assert.equal(l.sessionId, req!.sessionId);
          assert.equal(l.clientId, req!.clientId);
          assert.equal(l.traceId, traceId);
        }
        // Another call of the same session gets another correlation id.
        const other = hex(16);
        await client.callTool({
          name: 'echo',
          arguments: { text: 'again' },
          _meta: { traceparent: `00-${other}-${hex(8)}-01` },
        });
        const again = linesOfCall(sink, other);
        assert.equal(again[0]!.sessionId, req!.sessionId);
        assert.notEqual(again[0]!.correlationId, req!.correlationId);
      } finally {
        await client.close();
      }
    });
  }

  test('a sane x-request-id is the correlation id; an insane one is replaced', async () => {
    for (const [given, kept] of [
      ['req-42.a', true],
      ['has spaces and <tags>', false],
    ] as const) {
      const t = new StreamableHTTPClientTransport(new URL('/mcp', gw.url), {
        requestInit: { headers: { 'x-request-id': given } },
      });
      const client = new Client({ name: 'log-test', version: '1.0.0' });
      await client.connect(t);
      try {
        const traceId = hex(16);
        await client.callTool({
          name: 'echo',
          arguments: { text: 'x' },
          _meta: { traceparent: `00-${traceId}-${hex(8)}-01` },
        });
        const lines = linesOfCall(sink, traceId);
        if (kept) {
          // The header is the client's, on every POST: its initialize shares the id with the call.
          assert.equal(lines[0]!.correlationId, given);
          assert.ok(lines.some((l) => l.msg === 'response delivered' && l.traceId === traceId));
        } else {
          assert.equal(lines.length, 2);
          assert.match(String(lines[0]!.correlationId), /^[\da-f-]{36}$/);
        }
      } finally {
        await client.close();
      }
    }
  });

  test('module levels change live: PUT /admin/log-levels turns Session debug off and on', async () => {
    const put = (body: unknown) =>
      fetch(`${gw.url}/admin/log-levels`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify(body),
      });
    assert.equal((await fetch(`${gw.url}/admin/log-levels`)).status, 401, 'admin token required');
    const initial = await (
      await fetch(`${gw.url}/admin/log-levels`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json();
    assert.deepEqual(initial, { default: 'warn', modules: { Session: 'debug' } });
    assert.equal((await put({ modules: { Session: 'loud' } })).status, 400);
    const off = await put({ modules: { Session: null } });
    assert.equal(off.status, 200);
    assert.deepEqual(await off.json(), { default: 'warn', modules: {} });

    const { client } = await connectClient(gw.url, 'ws');
    try {
      const quiet = hex(16);
      await client.callTool({
        name: 'echo',
        arguments: { text: 'q' },
        _meta: { traceparent: `00-${quiet}-${hex(8)}-01` },
      });
      assert.equal(
        sink.lines.filter((l) => l.traceId === quiet).length,
        0,
        'no debug line while Session is at warn',
      );
      assert.equal((await put({ modules: { Session: 'debug' } })).status, 200);
      const loud = hex(16);
      await client.callTool({
        name: 'echo',
        arguments: { text: 'l' },
        _meta: { traceparent: `00-${loud}-${hex(8)}-01` },
      });
      assert.equal(linesOfCall(sink, loud).length, 2);
    } finally {
      await client.close();
    }
  });
});

describe('readable log lines for a terminal', () => {
  test('a pino JSON record becomes one line: time, level, [context], message, fields, stack', () => {
    const out: string[] = [];
    const target = new Writable({
      write(chunk: Buffer, _e, done) {
        out.push(chunk.toString());
        done();
      },
    });
    const pretty = new PrettyLogStream(target, false);
    const time = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
    pretty.write(
      `${JSON.stringify({ level: 40, time, pid: 1, hostname: 'h', context: 'Session', msg: 'slow', sessionId: 's1', n: 2 })}\n` +
        JSON.stringify({ level: 50, time, msg: 'boom', err: { stack: 'Error: boom\n    at x' } }).slice(
          0,
          20,
        ),
    );
    pretty.write(
      `${JSON.stringify({ level: 50, time, msg: 'boom', err: { stack: 'Error: boom\n    at x' } }).slice(20)}\n`,
    );
    assert.deepEqual(out, [
      '03:04:05.678 WARN  [Session] slow sessionId=s1 n=2\n',
      '03:04:05.678 ERROR boom\nError: boom\n    at x\n',
    ]);
  });
});
