/**
 * Legacy HTTP+SSE transport (2024-11-05): endpoint event, 202 for POSTs, event ids on
 * every event, resume with Last-Event-ID, and every kind of bad input.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ErrorCode } from '../libs/protocol/src';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { SessionService } from '../src/session/session.module';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { rawRequest } from './helpers/raw-http';
import { SseReader } from './helpers/sse-reader';

const INIT = {
  jsonrpc: '2.0',
  id: 0,
  method: 'initialize',
  params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'raw-sse', version: '1' } },
};

async function openSession(base: string) {
  const res = await fetch(`${base}/sse`, { headers: { accept: 'text/event-stream' } });
  assert.equal(res.status, 200);
  const reader = new SseReader(res);
  const endpoint = await reader.next();
  assert.equal(endpoint?.event, 'endpoint');
  const postUrl = new URL(endpoint!.data, base).toString();
  const sessionId = new URL(postUrl).searchParams.get('sessionId')!;
  return { res, reader, postUrl, sessionId };
}

function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

describe('legacy HTTP+SSE transport', () => {
  let gw: RunningGateway;

  before(async () => {
    gw = await startGateway({ maxBodyBytes: 64 * 1024 });
  });

  after(() => gw.close());

  test('GET /sse sends retry and the endpoint event; a POST is accepted with 202 and answered on the stream', async () => {
    const { reader, postUrl, sessionId } = await openSession(gw.url);
    assert.ok(reader.retry !== undefined && reader.retry > 0, 'retry: was sent');
    assert.match(sessionId, /^[\x21-\x7e]{16,}$/, 'session id is visible ASCII');
    const res = await post(postUrl, INIT);
    assert.equal(res.status, 202);
    const answer = await reader.nextMessage();
    assert.equal(answer?.message.id, 0);
    assert.ok(answer?.message.result.serverInfo);
    assert.match(
      answer!.id!,
      new RegExp(`^${sessionId.replace(/[-]/g, '\\-')}\\.\\d+$`),
      'event id names session and seq',
    );
    await reader.cancel();
  });

  test('a cut stream resumes with Last-Event-ID: every message exactly once, in order', async () => {
    const first = await openSession(gw.url);
    await post(first.postUrl, INIT);
    await first.reader.nextMessage();
    await post(first.postUrl, { jsonrpc: '2.0', method: 'notifications/initialized' });
    const call = {
      jsonrpc: '2.0',
      id: 'long-1',
      method: 'tools/call',
      params: { name: 'long_task', arguments: { duration: 1, steps: 10 }, _meta: { progressToken: 'p1' } },
    };
    assert.equal((await post(first.postUrl, call)).status, 202);
    const seen: Array<{ id?: string; message: any }> = [];
    for (let i = 0; i < 3; i++) {
      const m = await first.reader.nextMessage();
      assert.ok(m);
      seen.push(m);
    }
    await first.reader.cancel(); // the connection drops mid-flight
    const lastId = seen.at(-1)!.id!;

    const res = await fetch(`${gw.url}/sse`, {
      headers: { accept: 'text/event-stream', 'last-event-id': lastId },
    });
    assert.equal(res.status, 200);
    const resumed = new SseReader(res);
    for (;;) {
      const m = await resumed.nextMessage(15_000);
      assert.ok(m, 'stream ended before the response');
      seen.push(m);
      if (m.message.id === 'long-1') break;
    }
    await resumed.cancel();
    const progress = seen
      .filter((m) => m.message.method === 'notifications/progress')
      .map((m) => m.message.params.progress);
    assert.deepEqual(
      progress,
      Array.from({ length: 10 }, (_, i) => i + 1),
      'each progress step once, in order',
    );
    const seqs = seen.map((m) => Number(m.id!.split('.').pop()));
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
    );
    assert.equal(new Set(seqs).size, seqs.length, 'no sequence number twice');
    assert.equal(seen.filter((m) => m.message.id === 'long-1').length, 1);
  });

  test('a POST for an unknown session gets 404 at once', async () => {
    const started = Date.now();
    const res = await post(`${gw.url}/messages?sessionId=does-not-exist`, INIT);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as any).error.code, ErrorCode.SessionNotFound);
    assert.ok(Date.now() - started < 1000);
  });

  test('resuming an unknown session gets 404', async () => {
    const res = await fetch(`${gw.url}/sse`, { headers: { 'last-event-id': 'nope.3' } });
    assert.equal(res.status, 404);
  });

  describe('bad input on POST /messages', () => {
    let postUrl: string;
    let reader: SseReader;
    before(async () => {
      ({ postUrl, reader } = await openSession(gw.url));
    });
    after(() => reader.cancel());

    const cases: Array<{
      name: string;
      url?: (u: string) => string;
      body: unknown;
      headers?: Record<string, string>;
      status: number;
      code?: number;
    }> = [
      { name: 'malformed JSON', body: '{"jsonrpc":', status: 400, code: ErrorCode.ParseError },
      { name: 'not JSON-RPC', body: { hello: 'world' }, status: 400, code: ErrorCode.InvalidRequest },
      {
        name: 'wrong jsonrpc version',
        body: { jsonrpc: '1.0', id: 1, method: 'ping' },
        status: 400,
        code: ErrorCode.InvalidRequest,
      },
      {
        name: 'wrong content type',
        body: 'x',
        headers: { 'content-type': 'text/plain' },
        status: 415,
        code: ErrorCode.InvalidRequest,
      },
      {
        name: 'body over the limit',
        body: { jsonrpc: '2.0', method: 'x', params: { pad: 'x'.repeat(70 * 1024) } },
        status: 413,
        code: ErrorCode.InvalidRequest,
      },
      {
        name: 'no sessionId',
        url: (u) => u.replace(/\?.*$/, ''),
        body: INIT,
        status: 400,
        code: ErrorCode.InvalidRequest,
      },
      { name: 'a foreign Origin', body: INIT, headers: { origin: 'https://evil.example.com' }, status: 403 },
      // Shapes MCP does not allow (issue 6, defect 11): refused here, never left waiting upstream.
      {
        name: 'params an array',
        body: { jsonrpc: '2.0', id: 41, method: 'tools/list', params: [] },
        status: 400,
        code: ErrorCode.InvalidParams,
      },
      {
        name: 'a fractional id',
        body: { jsonrpc: '2.0', id: 1.5, method: 'tools/list' },
        status: 400,
        code: ErrorCode.InvalidRequest,
      },
      {
        name: 'an integer id beyond 2^53',
        body: '{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/list"}',
        status: 400,
        code: ErrorCode.InvalidRequest,
      },
      {
        name: '_meta not an object',
        body: { jsonrpc: '2.0', id: 42, method: 'tools/list', params: { _meta: 7 } },
        status: 400,
        code: ErrorCode.InvalidParams,
      },
      {
        name: 'a progressToken beyond 2^53',
        body: '{"jsonrpc":"2.0","id":44,"method":"tools/list","params":{"_meta":{"progressToken":9007199254740993}}}',
        status: 400,
        code: ErrorCode.InvalidParams,
      },
      {
        name: 'nesting deeper than MAX_JSON_DEPTH',
        body: `[{"jsonrpc":"2.0","id":43,"method":"tools/list","params":{"a":${'['.repeat(10_000)}${']'.repeat(10_000)}}}]`,
        status: 400,
        code: ErrorCode.InvalidRequest,
      },
    ];
    for (const c of cases) {
      test(`${c.name} → ${c.status}`, async () => {
        const res = await post(c.url ? c.url(postUrl) : postUrl, c.body, c.headers);
        assert.equal(res.status, c.status);
        const body = (await res.json()) as any;
        assert.equal(body.jsonrpc, '2.0');
        if (c.code !== undefined) assert.equal(body.error.code, c.code);
        assert.ok(body.error.message.length > 0);
      });
    }

    test('a rebinding Host → 403', async () => {
      const res = await rawRequest(postUrl, {
        method: 'POST',
        headers: { host: 'evil.example.com', 'content-type': 'application/json' },
        body: JSON.stringify(INIT),
      });
      assert.equal(res.status, 403);
      assert.match(JSON.parse(res.body).error.message, /Host/);
    });

    test('after all that the session still works', async () => {
      assert.equal((await post(postUrl, INIT)).status, 202);
      const answer = await reader.nextMessage();
      assert.equal(answer?.message.id, 0);
    });
  });

  test('a session answers only to the client that opened it; a client named in the query keeps its name', async () => {
    const res = await fetch(`${gw.url}/sse?client_id=browser-7`, {
      headers: { accept: 'text/event-stream' },
    });
    const reader = new SseReader(res);
    const endpoint = await reader.next();
    const postUrl = new URL(endpoint!.data, gw.url).toString();
    assert.match(postUrl, /client_id=browser-7/, 'the endpoint carries the client id back');
    assert.equal((await post(postUrl, INIT)).status, 202);
    assert.equal((await reader.nextMessage())?.message.id, 0);
    const sessionId = new URL(postUrl).searchParams.get('sessionId')!;
    const stranger = await post(`${gw.url}/messages?sessionId=${sessionId}`, INIT, {
      'x-mcp-client-id': 'someone-else',
    });
    assert.equal(stranger.status, 404);
    await reader.cancel();
  });

  test('a resume from a position the session no longer holds is refused with 409 before any stream opens', async () => {
    const gwSmall = await startGateway({ session: { outboxMaxMessages: 2 } });
    try {
      const { reader, postUrl, sessionId } = await openSession(gwSmall.url);
      for (let i = 0; i < 4; i++) await post(postUrl, { ...INIT, id: i });
      for (let i = 0; i < 4; i++) await reader.nextMessage();
      await reader.cancel();
      const res = await fetch(`${gwSmall.url}/sse`, { headers: { 'last-event-id': `${sessionId}.0` } });
      assert.equal(res.status, 409);
      assert.equal(((await res.json()) as any).error.code, ErrorCode.ResumeUnavailable);
    } finally {
      await gwSmall.close();
    }
  });

  describe('methods the legacy routes do not serve', () => {
    // [method, path, what Allow must say]: 405 as /mcp answers, never a stream, never a session.
    const rows: Array<[string, string, string]> = [
      ['HEAD', '/sse', 'GET'],
      ['HEAD', '/sse/demo', 'GET'],
      ['POST', '/sse', 'GET'],
      ['PUT', '/sse/demo', 'GET'],
      ['DELETE', '/sse', 'GET'],
      ['GET', '/messages?sessionId=x', 'POST'],
      ['HEAD', '/messages', 'POST'],
      ['PUT', '/messages?sessionId=x', 'POST'],
    ];
    for (const [method, path, allow] of rows) {
      test(`${method} ${path} → 405 with Allow: ${allow}, no session`, async () => {
        const sessions = gw.gateway.app.get(SessionService);
        const metrics = gw.gateway.app.get(GatewayMetrics);
        const before = sessions.size;
        const counted = metrics.errors.get('method_not_allowed') ?? 0;
        const res = await fetch(`${gw.url}${path}`, {
          method,
          headers: { accept: 'text/event-stream' },
          signal: AbortSignal.timeout(5000),
        });
        assert.equal(res.status, 405);
        assert.equal(res.headers.get('allow'), allow);
        assert.match(String(res.headers.get('content-type')), /^application\/json/);
        if (method !== 'HEAD') {
          const body = (await res.json()) as any;
          assert.equal(body.error.code, ErrorCode.InvalidRequest);
          assert.match(body.error.message, new RegExp(`Method ${method} not allowed`));
        } else {
          assert.equal(await res.text(), '', 'a HEAD answer has no body');
        }
        assert.equal(metrics.errors.get('method_not_allowed'), counted + 1, 'counted');
        assert.ok(sessions.size <= before, `no session was opened (${sessions.size} > ${before})`);
      });
    }
  });

  test('a GET /sse whose body nobody reads still notices the client going away', async () => {
    // An unread body fills the socket's buffer and Node stops reading it: a reset is then never seen.
    const port = Number(new URL(gw.url).port);
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(`GET /sse HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncontent-length: 200000\r\n\r\n`);
    socket.write(Buffer.alloc(200_000, 'x'));
    let text = '';
    const sessionId = await new Promise<string>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        const m = /event: endpoint\ndata: [^\n]*sessionId=([^&\n]+)/.exec(text);
        if (m) resolve(m[1]);
      });
      socket.on('close', () => reject(new Error(`closed before the endpoint event: ${text}`)));
    });
    const session = gw.gateway.app.get(SessionService).get(sessionId)!;
    assert.ok(session.hasLiveChannel(), 'the stream is attached');
    socket.destroy();
    const deadline = Date.now() + 5000;
    while (session.hasLiveChannel() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(session.hasLiveChannel(), false, 'the stream detached when the client went away');
  });

  test('GET /sse with a foreign Origin is refused with 403', async () => {
    const res = await fetch(`${gw.url}/sse`, { headers: { origin: 'http://evil.example.com' } });
    assert.equal(res.status, 403);
  });

  test('an unknown service is 404', async () => {
    const res = await fetch(`${gw.url}/sse/nope`);
    assert.equal(res.status, 404);
  });

  test('sessions whose stream is gone are ended by the idle sweep; none are left behind', async () => {
    const { reader } = await openSession(gw.url);
    await reader.cancel();
    const sessions = gw.gateway.app.get(SessionService);
    // Wait until the gateway has seen the stream go (no session has a live channel), then sweep.
    const deadline = Date.now() + 5000;
    const live = () => [...sessions.all()].some((s) => s.hasLiveChannel());
    while (live() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(live(), false, 'the cancelled stream detached from its session');
    assert.ok(sessions.size > 0, 'the session outlived its stream until the sweep');
    sessions.sweep(Date.now() + 24 * 3600 * 1000);
    assert.equal(sessions.size, 0);
  });
});
