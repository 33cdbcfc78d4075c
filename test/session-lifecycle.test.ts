/**
 * Session lifecycle against the real app (bootstrap() on port 0): resume positions are
 * validated (issue 6, defect 3), superseded POST streams end (defect 7), and a session whose
 * client went away frees its upstream after the detached timeout (defect 12).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { ErrorCode } from '../libs/protocol/src';
import { SessionService } from '../src/session/session.module';
import { everythingStdioReplica } from './helpers/everything';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { childPids } from './helpers/leaks';
import { SseReader } from './helpers/sse-reader';
import { call, openSession, raw, sessionHeaders } from './helpers/streamable-http-client';
import { waitUntil } from './helpers/wait';

const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: {
    protocolVersion: '2024-11-05',
    capabilities: {},
    clientInfo: { name: 'lifecycle', version: '1' },
  },
};

function wsUrl(base: string, path: string): string {
  return base.replace(/^http/, 'ws') + path;
}

/** A raw WebSocket client: the first frame names the session; `closed` resolves with the close code. */
class WsClient {
  readonly frames: any[] = [];
  readonly closed: Promise<number>;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => this.frames.push(JSON.parse(data.toString())));
    ws.on('error', () => undefined);
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  }

  static async open(url: string): Promise<WsClient> {
    const c = new WsClient(new WebSocket(url, 'mcp'));
    await Promise.race([
      new Promise((resolve) => c.ws.once('open', resolve)),
      c.closed.then((code) => {
        throw new Error(`closed with ${code} before open`);
      }),
    ]);
    await waitUntil(() => c.frames.length > 0 || c.ws.readyState !== WebSocket.OPEN, 5000, 'the hello frame');
    return c;
  }

  get hello(): { sessionId: string; seq: number; resumed: boolean } {
    return this.frames[0]?.params;
  }

  async response(id: number, timeoutMs = 5000): Promise<any> {
    await waitUntil(
      () => this.frames.some((f) => f.id === id && f.method === undefined),
      timeoutMs,
      `answer ${id}`,
    );
    return this.frames.find((f) => f.id === id && f.method === undefined);
  }
}

/** Opens GET /sse[/<service>] and reads the endpoint event; `abort()` drops the connection. */
async function openLegacySse(base: string, path: string, headers: Record<string, string> = {}) {
  const abort = new AbortController();
  const res = await fetch(new URL(path, base), {
    headers: { accept: 'text/event-stream', ...headers },
    signal: abort.signal,
  });
  if (res.status !== 200) {
    const body: any = await res.json();
    return { status: res.status, body, reader: undefined, endpoint: undefined, abort: () => undefined };
  }
  const reader = new SseReader(res);
  const first = await reader.next(5000);
  assert.equal(first?.event, 'endpoint');
  return {
    status: 200,
    body: undefined,
    reader,
    endpoint: first!.data,
    abort: () => abort.abort(),
  };
}

function postMessage(base: string, endpoint: string, message: unknown): Promise<Response> {
  return fetch(new URL(endpoint, base), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(message),
  });
}

describe('resume positions are validated (defect 3)', () => {
  let gw: RunningGateway;
  let sessions: SessionService;

  before(async () => {
    gw = await startGateway({ session: { outboxMaxMessages: 8 } });
    sessions = gw.gateway.app.get(SessionService);
  });
  after(() => gw.close());

  test(
    'legacy SSE: a resume past the end is refused, so a later loss is reported instead of skipped',
    { timeout: 30_000 },
    async () => {
      const sse = await openLegacySse(gw.url, '/sse');
      const sessionId = new URL(sse.endpoint!, gw.url).searchParams.get('sessionId')!;
      assert.equal((await postMessage(gw.url, sse.endpoint!, INIT)).status, 202);
      const init = await sse.reader!.nextMessage(5000);
      assert.equal(init?.id, `${sessionId}.1`);
      sse.abort();
      const session = sessions.get(sessionId)!;
      await waitUntil(() => !session.hasLiveChannel(), 5000, 'the stream to be gone');

      const future = await openLegacySse(gw.url, '/sse', { 'last-event-id': `${sessionId}.1000` });
      assert.equal(future.status, 409, 'a position the session never reached is a client error');
      assert.equal(future.body.error.code, ErrorCode.ResumeUnavailable);
      assert.match(future.body.error.message, /only sent events up to 1/);

      // 10 answers while detached, with room for 8: two are lost, and a resume from before them says so.
      for (let i = 0; i < 10; i++) {
        assert.equal(
          (await postMessage(gw.url, sse.endpoint!, { jsonrpc: '2.0', id: 100 + i, method: 'ping' })).status,
          202,
        );
      }
      await waitUntil(() => session.outbox.seq === 11, 5000, 'the ten answers');
      const stale = await openLegacySse(gw.url, '/sse', { 'last-event-id': `${sessionId}.1` });
      assert.equal(stale.status, 409, 'not a silent replay of the 8 that are left');
      assert.equal(stale.body.error.code, ErrorCode.ResumeUnavailable);

      const fresh = await openLegacySse(gw.url, '/sse', { 'last-event-id': `${sessionId}.11` });
      assert.equal(fresh.status, 200, 'a position the session reached resumes');
      assert.equal(
        (await postMessage(gw.url, sse.endpoint!, { jsonrpc: '2.0', id: 7, method: 'ping' })).status,
        202,
      );
      const next = await fresh.reader!.nextMessage(5000);
      assert.equal(next?.id, `${sessionId}.12`);
      assert.equal(next?.message.id, 7);
      fresh.abort();
    },
  );

  test('WebSocket: a lastEventId past the end closes with 4010', { timeout: 30_000 }, async () => {
    const c1 = await WsClient.open(wsUrl(gw.url, '/ws'));
    const { sessionId } = c1.hello;
    c1.ws.terminate();
    await c1.closed;
    const c2 = await WsClient.open(wsUrl(gw.url, `/ws?sessionId=${sessionId}&lastEventId=1000`));
    assert.equal(await c2.closed, 4010);
    const c3 = await WsClient.open(wsUrl(gw.url, `/ws?sessionId=${sessionId}&lastEventId=0`));
    assert.equal(c3.hello.resumed, true, 'the session itself is fine');
    c3.ws.close(1000);
    await c3.closed;
  });

  test('Streamable HTTP: a Last-Event-ID past the end is 409 with -31006', { timeout: 30_000 }, async () => {
    const sessionId = await openSession(gw.url, '2025-11-25');
    const res = await raw(gw.url, {
      method: 'GET',
      headers: {
        ...sessionHeaders(sessionId, '2025-11-25'),
        accept: 'text/event-stream',
        'last-event-id': '0_1000',
      },
    });
    assert.equal(res.status, 409);
    assert.equal(res.json.error.code, ErrorCode.ResumeUnavailable);
    await raw(gw.url, { method: 'DELETE', headers: sessionHeaders(sessionId, '2025-11-25') });
  });
});

describe('POST streams are not left open (defect 7)', () => {
  let gw: RunningGateway;
  let sessions: SessionService;

  before(async () => {
    gw = await startGateway();
    sessions = gw.gateway.app.get(SessionService);
  });
  after(() => gw.close());

  test(
    'a WebSocket taking the session over ends the pending POST; the answer arrives on the WebSocket',
    { timeout: 30_000 },
    async () => {
      const version = '2025-06-18';
      const sessionId = await openSession(gw.url, version);
      const session = sessions.get(sessionId)!;
      const post = fetch(new URL('/mcp', gw.url), {
        method: 'POST',
        headers: sessionHeaders(sessionId, version),
        body: JSON.stringify(call(5, 'long_task', { duration: 0.5, steps: 1 })),
        signal: AbortSignal.timeout(10_000),
      });
      await waitUntil(() => session.inFlightCount === 1, 5000, 'the call to be in flight');
      const ws = await WsClient.open(
        wsUrl(gw.url, `/ws?sessionId=${sessionId}&lastEventId=${session.outbox.seq}`),
      );
      assert.equal(ws.hello.resumed, true);
      const res = await post; // before the fix this hung until the client gave up
      assert.equal(res.status, 409);
      const body: any = await res.json();
      assert.match(body.error.message, /moved to another connection/);
      const answer = await ws.response(5);
      assert.ok(answer.result, 'the tool result came over the WebSocket');
      ws.ws.close(1000);
      await ws.closed;
    },
  );
});

describe('a session whose client went away frees its upstream (defect 12)', () => {
  const DETACHED_MS = 1500;
  const N = 3;
  let gw: RunningGateway;
  let sessions: SessionService;

  before(async () => {
    gw = await startGateway({
      session: { detachedTimeoutMs: DETACHED_MS, sweepIntervalMs: 100 },
      services: { everything: { replicas: [everythingStdioReplica()] } },
    });
    sessions = gw.gateway.app.get(SessionService);
  });
  after(() => gw.close());

  test(
    'dropped WebSocket and SSE clients lose their sessions and stdio children; one that comes back resumes',
    { timeout: 30_000 },
    async () => {
      const baseline = childPids().length;
      const ws: WsClient[] = [];
      const sse: Array<Awaited<ReturnType<typeof openLegacySse>>> = [];
      for (let i = 0; i < N; i++) {
        const c = await WsClient.open(wsUrl(gw.url, '/ws/everything'));
        c.ws.send(JSON.stringify({ ...INIT, params: { ...INIT.params, protocolVersion: '2025-06-18' } }));
        await c.response(1, 15_000);
        ws.push(c);
        const s = await openLegacySse(gw.url, '/sse/everything');
        assert.equal((await postMessage(gw.url, s.endpoint!, INIT)).status, 202);
        assert.equal((await s.reader!.nextMessage(15_000))?.message.id, 1);
        sse.push(s);
      }
      assert.equal(sessions.size, 2 * N);
      assert.equal(childPids().length, baseline + 2 * N, 'one stdio child per session (dedicated)');

      // Every client drops its connection without ending the session; the first WebSocket comes back.
      const returning = ws[0].hello.sessionId;
      for (const c of ws) c.ws.terminate();
      for (const s of sse) s.abort();
      await waitUntil(
        () => [...sessions.all()].every((s) => !s.hasLiveChannel()),
        5000,
        'the drops to be seen',
      );
      const back = await WsClient.open(wsUrl(gw.url, `/ws/everything?sessionId=${returning}&lastEventId=1`));
      assert.equal(back.hello.resumed, true, 'inside the window the session is still there');

      const dropped = Date.now();
      await waitUntil(() => sessions.size === 1, DETACHED_MS + 5000, 'the detached sessions to end');
      assert.ok(Date.now() - dropped < DETACHED_MS + 5000);
      await waitUntil(() => childPids().length === baseline + 1, 10_000, 'their stdio children to exit');

      back.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }));
      assert.ok(
        Array.isArray((await back.response(2, 10_000)).result.tools),
        'the resumed session still works',
      );
      back.ws.close(1000);
      await back.closed;
      await waitUntil(() => sessions.size === 0, 5000, 'the last session to end');
    },
  );
});
