/**
 * The WebSocket client transport against the real gateway (bootstrap() on a loopback port,
 * embedded demo upstream): the official SDK WebSocketClientTransport + Client, and raw `ws`
 * clients for what the SDK cannot show (refusals, close codes, resume, heartbeat).
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { WebSocket, type ClientOptions } from 'ws';
import type { GatewayConfigOverrides } from '../src/config/gateway-config';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { SessionService } from '../src/session/session.module';
import './helpers/clients';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { waitUntil } from './helpers/wait';

// The SDK's WebSocket transport uses the global WebSocket: helpers/clients installs a browser-like one.

const SAMPLED = 'sampled over a WebSocket';
const MAX_FRAME = 64 * 1024;
const HEARTBEAT_MS = 200;

/** Config fields the transport reads (`ws` block); cast because the schema may not list them all yet. */
const WS_OVERRIDES = {
  maxBodyBytes: MAX_FRAME,
  ws: { heartbeatIntervalMs: HEARTBEAT_MS, maxFrameBytes: MAX_FRAME },
} as unknown as GatewayConfigOverrides;

function wsUrl(base: string, path: string): string {
  return base.replace(/^http/, 'ws') + path;
}

const INIT = (id: number, protocolVersion = '2025-06-18') =>
  JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: { protocolVersion, capabilities: {}, clientInfo: { name: 'raw-ws', version: '1.0.0' } },
  });
const INITIALIZED = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' });

interface Frame {
  raw: string;
  msg: any;
}

/**
 * A raw `ws` client that records frames and counts the resume position the way a
 * resilient client would: gateway notifications set it, every other frame advances it.
 */
class RawClient {
  readonly frames: Frame[] = [];
  /** Message frames only (no notifications/gateway/*). */
  readonly data: Frame[] = [];
  position = -1;
  highest = -1;
  sessionHeader: string | undefined;
  frozen = false;
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: Array<() => void> = [];

  constructor(readonly ws: WebSocket) {
    ws.on('upgrade', (res: IncomingMessage) => {
      const h = res.headers['mcp-session-id'];
      this.sessionHeader = typeof h === 'string' ? h : undefined;
    });
    ws.on('message', (data, isBinary) => {
      if (this.frozen) return;
      const raw = isBinary ? Buffer.from(data as Buffer).toString('utf8') : data.toString();
      const msg = JSON.parse(raw);
      const frame = { raw, msg };
      this.frames.push(frame);
      if (typeof msg.method === 'string' && msg.method.startsWith('notifications/gateway/')) {
        if (typeof msg.params?.seq === 'number') this.position = msg.params.seq;
      } else {
        this.data.push(frame);
        this.position++;
        this.highest = Math.max(this.highest, this.position);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        for (const w of this.waiters.splice(0)) w();
        resolve({ code, reason: reason.toString() });
      }),
    );
    ws.on('error', () => undefined);
  }

  static async open(url: string, protocols: string | string[] = 'mcp', options: ClientOptions = {}) {
    const client = new RawClient(new WebSocket(url, protocols, options));
    await new Promise<void>((resolve, reject) => {
      client.ws.once('open', () => resolve());
      client.ws.once('error', reject);
    });
    return client;
  }

  get hello(): any {
    return this.frames[0]?.msg;
  }

  send(text: string | Buffer, binary = false): void {
    this.ws.send(text, { binary });
  }

  /** Waits for the first recorded frame (from index `from`) that matches. */
  async next(match: (msg: any) => boolean, timeoutMs = 5000, from = 0): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.slice(from).find((f) => match(f.msg));
      if (found) return found;
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error('connection closed while waiting');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; frames: ${this.frames.map((f) => f.raw).join('\n')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  response(id: number | string, timeoutMs?: number): Promise<Frame> {
    return this.next((m) => m.id === id && m.method === undefined, timeoutMs);
  }

  async initialize(protocolVersion = '2025-06-18'): Promise<any> {
    this.send(INIT(1, protocolVersion));
    const res = await this.response(1);
    this.send(INITIALIZED);
    return res.msg;
  }

  close(code?: number): void {
    this.ws.close(code);
  }
}

/** Opens an upgrade that the gateway is expected to refuse; returns the HTTP status and body. */
function refusedUpgrade(url: string, protocols: string | string[] = 'mcp', options: ClientOptions = {}) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options);
    ws.on('open', () => {
      ws.terminate();
      reject(new Error('the upgrade was accepted'));
    });
    ws.on('error', () => undefined);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
  });
}

describe('WebSocket transport', () => {
  let gw: RunningGateway;
  let sessions: SessionService;

  before(async () => {
    gw = await startGateway(WS_OVERRIDES);
    sessions = gw.gateway.app.get(SessionService);
  });

  after(async () => {
    await gw.close();
  });

  describe('official SDK WebSocketClientTransport', () => {
    let client: Client;

    before(async () => {
      client = new Client({ name: 'ws-e2e', version: '1.0.0' }, { capabilities: { sampling: {} } });
      client.setRequestHandler(CreateMessageRequestSchema, async () => ({
        role: 'assistant',
        content: { type: 'text', text: SAMPLED },
        model: 'test-model',
      }));
      await client.connect(new WebSocketClientTransport(new URL(wsUrl(gw.url, '/ws'))));
    });

    after(async () => {
      await client.close();
    });

    test('initialize went through the gateway to the demo upstream', () => {
      assert.equal(client.getServerVersion()?.name !== undefined, true);
      assert.ok(client.getServerCapabilities()?.tools, 'the demo server declares tools');
    });

    test('tools/list lists the demo tools', async () => {
      const { tools } = await client.listTools();
      const names = tools.map((t) => t.name);
      for (const name of ['echo', 'long_task', 'ask_llm']) assert.ok(names.includes(name), names.join(','));
    });

    test('tools/call returns the upstream result', async () => {
      const result = await client.callTool({ name: 'echo', arguments: { text: 'hello over ws' } });
      assert.match(JSON.stringify(result.content), /hello over ws/);
    });

    test('progress notifications arrive in order before the result', async () => {
      const progress: number[] = [];
      const result = await client.callTool(
        { name: 'long_task', arguments: { duration: 0.3, steps: 3 } },
        undefined,
        {
          onprogress: (p) => progress.push(p.progress),
          timeout: 10_000,
        },
      );
      assert.deepEqual(progress, [1, 2, 3]);
      assert.match(JSON.stringify(result.content), /finished/);
    });

    test('a sampling request from the upstream is answered by the client', async () => {
      const result = await client.callTool(
        { name: 'ask_llm', arguments: { question: 'gateway?' } },
        undefined,
        {
          timeout: 10_000,
        },
      );
      assert.match(JSON.stringify(result.content), new RegExp(SAMPLED));
    });

    test('the WebSocket Upgrade on /mcp and on /ws/<service> work too', async () => {
      for (const path of ['/mcp', '/ws/demo', '/mcp/demo']) {
        const other = new Client({ name: 'ws-e2e-2', version: '1.0.0' });
        await other.connect(new WebSocketClientTransport(new URL(wsUrl(gw.url, path))));
        const { tools } = await other.listTools();
        assert.ok(
          tools.some((t) => t.name === 'echo'),
          path,
        );
        await other.close();
      }
    });

    test('plain HTTP on /mcp and /health is still served by Fastify', async () => {
      const health = await fetch(`${gw.url}/health`);
      assert.equal(health.status, 200);
      assert.equal(((await health.json()) as { status: string }).status, 'ok');
      // A GET without a session is the Streamable HTTP handler's 400, not an upgrade or a hang.
      const res = await fetch(`${gw.url}/mcp`, { method: 'GET', headers: { accept: 'text/event-stream' } });
      assert.equal(res.status, 400);
      const body = (await res.json()) as { error: { code: number; message: string } };
      assert.equal(body.error.code, -32600);
      assert.match(body.error.message, /Mcp-Session-Id/);
    });
  });

  describe('admission', () => {
    test('subprotocol mcp is selected and the session id is in the 101 and the first frame', async () => {
      const c = await RawClient.open(wsUrl(gw.url, '/ws'), ['other', 'mcp']);
      assert.equal(c.ws.protocol, 'mcp');
      await c.next((m) => m.method === 'notifications/gateway/session');
      assert.equal(c.hello.params.sessionId, c.sessionHeader);
      assert.equal(c.hello.params.seq, 0);
      assert.equal(c.hello.params.resumed, false);
      assert.ok(sessions.get(c.sessionHeader), 'the session exists');
      c.close();
      await c.closed;
    });

    test('a subprotocol list without mcp is refused with 400 that says why', async () => {
      const { status, body } = await refusedUpgrade(wsUrl(gw.url, '/ws'), ['graphql-ws']);
      assert.equal(status, 400);
      const { error } = JSON.parse(body);
      assert.match(error.message, /subprotocol "graphql-ws"/);
      assert.match(error.message, /speaks "mcp"/);
    });

    test('a foreign Origin is refused with 403 on the upgrade', async () => {
      const { status, body } = await refusedUpgrade(wsUrl(gw.url, '/ws'), 'mcp', {
        origin: 'http://evil.example.com',
      });
      assert.equal(status, 403);
      assert.match(body, /Origin/);
    });

    test('an unknown service is 404 on the upgrade, and so is an unknown path', async () => {
      assert.equal((await refusedUpgrade(wsUrl(gw.url, '/ws/nope'))).status, 404);
      assert.equal((await refusedUpgrade(wsUrl(gw.url, '/elsewhere'))).status, 404);
    });

    test('an unknown session is closed with 4004', async () => {
      const c = await RawClient.open(wsUrl(gw.url, '/ws?sessionId=does-not-exist&lastEventId=3'));
      const { code } = await c.closed;
      assert.equal(code, 4004);
    });

    test("another client's session is closed with 4004", async () => {
      const a = await RawClient.open(wsUrl(gw.url, '/ws'), 'mcp', {
        headers: { 'x-mcp-client-id': 'alice' },
      });
      await a.next((m) => m.method === 'notifications/gateway/session');
      const b = await RawClient.open(wsUrl(gw.url, `/ws?sessionId=${a.hello.params.sessionId}`), 'mcp', {
        headers: { 'x-mcp-client-id': 'mallory' },
      });
      assert.equal((await b.closed).code, 4004);
      assert.equal(a.ws.readyState, WebSocket.OPEN, 'the owner keeps its connection');
      a.close();
      await a.closed;
    });
  });

  describe('frames', () => {
    let c: RawClient;

    before(async () => {
      c = await RawClient.open(wsUrl(gw.url, '/ws'));
    });

    after(async () => {
      c.close();
      await c.closed;
    });

    test('malformed JSON gets a -32700 error (id null) and the connection stays usable', async () => {
      c.send('{"jsonrpc": "2.0", "id": 1, "method": ');
      const err = await c.next((m) => m.error?.code === -32700);
      assert.equal(err.msg.id, null);
      const init = await c.initialize();
      assert.ok(init.result.serverInfo, 'initialize still works');
    });

    test('an invalid message shape gets -32600', async () => {
      c.send(JSON.stringify({ jsonrpc: '2.0', id: 7 }));
      const err = await c.response(7);
      assert.equal(err.msg.error.code, -32600);
      c.send(JSON.stringify({ jsonrpc: '1.0', method: 'ping', id: 8 }));
      assert.equal((await c.response(8)).msg.error.code, -32600);
    });

    test('a binary frame holding UTF-8 JSON is a message like a text frame', async () => {
      c.send(Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 'bin-1', method: 'tools/list' })), true);
      const res = await c.response('bin-1');
      assert.ok(Array.isArray(res.msg.result.tools));
    });

    test('a binary frame that is not UTF-8 gets -32700', async () => {
      const from = c.frames.length;
      c.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), true);
      const err = await c.next((m) => m.error?.code === -32700, 5000, from);
      assert.match(err.msg.error.message, /UTF-8/);
    });

    test('batches are refused when the negotiated version (2025-06-18) has none', async () => {
      const from = c.frames.length;
      c.send(JSON.stringify([{ jsonrpc: '2.0', id: 20, method: 'ping' }]));
      const err = await c.next((m) => m.error?.code === -32600 && m.id === null, 5000, from);
      assert.match(err.msg.error.message, /batch/);
    });

    // These two open their own connection so they hold whatever order or subset of tests runs.
    test('every message frame advanced the counted position in step with the session outbox', async () => {
      const own = await RawClient.open(wsUrl(gw.url, '/ws'));
      try {
        await own.initialize();
        for (const id of ['pos-1', 'pos-2', 'pos-3']) {
          own.send(JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' }));
          await own.response(id);
        }
        const session = sessions.get(own.hello.params.sessionId)!;
        assert.equal(session.outbox.seq, 4, 'initialize and three pings');
        assert.equal(own.highest, session.outbox.seq);
        assert.equal(own.data.length, session.outbox.seq);
      } finally {
        own.close();
        await own.closed;
      }
    });

    test('notifications/gateway/ack lets the session drop what the client has', async () => {
      const own = await RawClient.open(wsUrl(gw.url, '/ws'));
      try {
        await own.initialize();
        own.send(JSON.stringify({ jsonrpc: '2.0', id: 'before-ack', method: 'ping' }));
        await own.response('before-ack');
        const session = sessions.get(own.hello.params.sessionId)!;
        assert.equal(session.outbox.size, 2, 'initialize and ping kept until acknowledged');
        own.send(
          JSON.stringify({
            jsonrpc: '2.0',
            method: 'notifications/gateway/ack',
            params: { seq: own.highest },
          }),
        );
        await waitUntil(() => session.outbox.size === 0, 5000, 'the ack to free the outbox');
        own.send(JSON.stringify({ jsonrpc: '2.0', id: 'after-ack', method: 'ping' }));
        await own.response('after-ack');
        assert.equal(session.outbox.size, 1);
      } finally {
        own.close();
        await own.closed;
      }
    });

    test('a frame above the maximum size closes the connection with 1009', async () => {
      const big = await RawClient.open(wsUrl(gw.url, '/ws'));
      big.send(
        JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(MAX_FRAME) } }),
      );
      assert.equal((await big.closed).code, 1009);
      assert.ok((gw.gateway.app.get(GatewayMetrics).errors.get('ws_frame_too_large') ?? 0) >= 1);
    });

    test('batches work in a 2025-03-26 session', async () => {
      const b = await RawClient.open(wsUrl(gw.url, '/ws'));
      const init = await b.initialize('2025-03-26');
      assert.equal(init.result.protocolVersion, '2025-03-26');
      b.send(
        JSON.stringify([
          { jsonrpc: '2.0', id: 30, method: 'ping' },
          { jsonrpc: '2.0', id: 31, method: 'tools/list' },
        ]),
      );
      await b.response(30);
      assert.ok(Array.isArray((await b.response(31)).msg.result.tools));
      b.close();
      await b.closed;
    });
  });

  describe('shapes MCP does not allow get a JSON-RPC error and the connection stays (issue 6, defect 11)', () => {
    let c: RawClient;
    before(async () => {
      c = await RawClient.open(wsUrl(gw.url, '/ws'));
      await c.initialize('2025-03-26');
    });
    after(async () => {
      c.close();
      await c.closed;
    });

    // [name, frame, JSON-RPC code, id the error carries, metric kind]
    const rows: Array<[string, string, number, number | null, string]> = [
      [
        'params an array',
        '{"jsonrpc":"2.0","id":51,"method":"tools/list","params":[]}',
        -32602,
        51,
        'invalid_params',
      ],
      [
        'a fractional id',
        '{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}',
        -32600,
        null,
        'invalid_request',
      ],
      [
        'an integer id beyond 2^53',
        '{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/list"}',
        -32600,
        null,
        'invalid_request',
      ],
      [
        '_meta not an object',
        '{"jsonrpc":"2.0","id":52,"method":"tools/list","params":{"_meta":[1]}}',
        -32602,
        52,
        'invalid_params',
      ],
      [
        'a progressToken beyond 2^53',
        '{"jsonrpc":"2.0","id":54,"method":"tools/list","params":{"_meta":{"progressToken":9007199254740993}}}',
        -32602,
        54,
        'invalid_params',
      ],
      // Members JSON-RPC does not define: the upstream drops the request; a response with params
      // used to throw in the shape check (close 1011).
      [
        'a request that also carries error',
        '{"jsonrpc":"2.0","id":55,"method":"tools/list","error":[{"a":"b"},null]}',
        -32600,
        55,
        'invalid_request',
      ],
      [
        'a response that carries params: null',
        '{"jsonrpc":"2.0","id":56,"params":null,"error":{"code":1,"message":"m"}}',
        -32600,
        56,
        'invalid_request',
      ],
      [
        'nesting deeper than MAX_JSON_DEPTH (a 2025-03-26 batch)',
        `[{"jsonrpc":"2.0","id":53,"method":"tools/list","params":{"a":${'['.repeat(10_000)}${']'.repeat(10_000)}}}]`,
        -32600,
        null,
        'invalid_request',
      ],
    ];
    let n = 0;
    for (const [name, frame, code, id, kind] of rows) {
      test(`${name} → ${code}, then the session still answers`, async () => {
        const metrics = gw.gateway.app.get(GatewayMetrics);
        const before = metrics.errors.get(kind) ?? 0;
        const from = c.frames.length;
        c.send(frame);
        const err = await c.next((m) => m.error !== undefined, 5000, from);
        assert.equal(err.msg.error.code, code, err.raw);
        assert.equal(err.msg.id, id, err.raw);
        assert.equal(metrics.errors.get(kind), before + 1, `metric ${kind} counted`);
        const alive = `alive-${n++}`;
        c.send(JSON.stringify({ jsonrpc: '2.0', id: alive, method: 'tools/list' }));
        assert.ok(Array.isArray((await c.response(alive)).msg.result.tools));
      });
    }
  });

  describe('resume', () => {
    test('sessionId + lastEventId query parameters replay exactly the missed messages', async () => {
      const c1 = await RawClient.open(wsUrl(gw.url, '/ws'));
      await c1.initialize();
      c1.send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }));
      await c1.response(2);
      const sessionId: string = c1.hello.params.sessionId;
      c1.send(
        JSON.stringify({
          jsonrpc: '2.0',
          id: 3,
          method: 'tools/call',
          params: {
            name: 'long_task',
            arguments: { duration: 0.4, steps: 4 },
            _meta: { progressToken: 'p3' },
          },
        }),
      );
      await c1.next((m) => m.method === 'notifications/progress');
      // The connection drops right after the first progress notification.
      c1.frozen = true;
      c1.ws.terminate();
      const seen = c1.highest;
      assert.ok(seen >= 3, `position after initialize, tools/list and one progress: ${seen}`);

      const session = sessions.get(sessionId)!;
      await waitUntil(() => session.inFlightCount === 0, 5000, 'the call to finish');
      const missed = session.outbox.since(seen).map((e) => e.raw);
      assert.ok(missed.length >= 2, 'progress and the result happened while disconnected');

      const c2 = await RawClient.open(wsUrl(gw.url, `/ws?sessionId=${sessionId}&lastEventId=${seen}`));
      await c2.response(3);
      assert.deepEqual(c2.hello.params, { sessionId, seq: seen, resumed: true });
      assert.deepEqual(
        c2.data.map((f) => f.raw),
        missed,
      );
      assert.ok(!c2.data.some((f) => f.msg.id === 2), 'nothing seen before is sent again');
      assert.equal(c2.highest, session.outbox.seq, 'the counted position matches the session');
      c2.send(JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'ping' }));
      await c2.response(4);

      // Mcp-Session-Id + Last-Event-ID headers resume too, and take the session over.
      const c3 = await RawClient.open(wsUrl(gw.url, '/ws'), 'mcp', {
        headers: { 'Mcp-Session-Id': sessionId, 'Last-Event-ID': String(c2.highest) },
      });
      assert.equal((await c2.closed).code, 4002, 'the older connection is told it was taken over');
      await c3.next((m) => m.method === 'notifications/gateway/session');
      assert.equal(c3.hello.params.resumed, true);
      c3.send(JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'ping' }));
      await c3.response(5);
      assert.equal(c3.data.length, 1, 'only the new answer: nothing was missed');
      c3.close(1000);
      await c3.closed;
      await waitUntil(() => sessions.get(sessionId) === undefined, 5000, 'the session to end');
    });

    test('closing with another code than 1000 keeps the session resumable', async () => {
      const c1 = await RawClient.open(wsUrl(gw.url, '/ws'));
      await c1.initialize();
      const sessionId: string = c1.hello.params.sessionId;
      c1.close(4000);
      await c1.closed;
      assert.ok(sessions.get(sessionId), 'still there');
      const c2 = await RawClient.open(wsUrl(gw.url, `/ws?sessionId=${sessionId}&lastEventId=${c1.highest}`));
      c2.send(JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }));
      await c2.response(9);
      c2.close(1000);
      await c2.closed;
    });

    test('a malformed Last-Event-ID is refused with 400', async () => {
      const { status } = await refusedUpgrade(wsUrl(gw.url, '/ws?sessionId=abc&lastEventId=soon'));
      assert.equal(status, 400);
    });
  });

  describe('heartbeat', () => {
    test('a peer that stops answering pings is terminated; a live one is kept', async () => {
      const live = await RawClient.open(wsUrl(gw.url, '/ws'));
      const dead = await RawClient.open(wsUrl(gw.url, '/ws'), 'mcp', { autoPong: false });
      const started = Date.now();
      const { code } = await dead.closed;
      assert.equal(code, 1006, 'dropped without a close handshake');
      assert.ok(Date.now() - started < HEARTBEAT_MS * 10, 'within a few heartbeat intervals');
      assert.equal(live.ws.readyState, WebSocket.OPEN);
      assert.ok((gw.gateway.app.get(GatewayMetrics).errors.get('ws_heartbeat_timeout') ?? 0) >= 1);
      live.close();
      await live.closed;
    });
  });
});

describe('WebSocket transport shutdown', () => {
  test('closing the gateway closes connections with 1001 and does not hang', async () => {
    const gw = await startGateway();
    const c = await RawClient.open(wsUrl(gw.url, '/ws'));
    await c.next((m) => m.method === 'notifications/gateway/session');
    const started = Date.now();
    await gw.close();
    assert.equal((await c.closed).code, 1001);
    assert.ok(Date.now() - started < 5000);
  });
});
