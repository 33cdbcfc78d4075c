/**
 * Nothing a client sends may end the process (issue 6, defect 1). Two inputs that used to: a
 * 2026-07-28 tools/list whose params hold 10,000 nested arrays (RangeError in JSON.stringify while
 * the sessionless bridge forwards it), and a deeply nested 2025-03-26 batch posted to a WebSocket
 * session's id (RangeError inside the transport-switch continuation). By default the JSON depth
 * bound refuses both at parse time (400 −32600); with the bound lifted, the same inputs reach the
 * code that overflows and the error boundary of their entry point answers 500 −32603, logs and counts.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { ErrorCode } from '../libs/protocol/src';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { SseReader } from './helpers/sse-reader';
import { BOTH, raw } from './helpers/streamable-http-client';

const MODERN = '2026-07-28';
const CLIENT = 'boundary-client';
const meta = {
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientCapabilities': {},
};

/** `depth` arrays inside each other, as JSON text (built as text: JSON.stringify would overflow). */
function nested(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}

function deepToolsList(depth: number): string {
  return `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":${JSON.stringify(meta)},"deep":${nested(depth)}}}`;
}

function deepBatch(depth: number): string {
  return `[{"jsonrpc":"2.0","id":"deep","method":"tools/list","params":{"deep":${nested(depth)}}}]`;
}

const modernHeaders = {
  'content-type': 'application/json',
  accept: BOTH,
  'mcp-protocol-version': MODERN,
  'mcp-method': 'tools/list',
  'x-mcp-client-id': CLIENT,
};

const goodToolsList = JSON.stringify({
  jsonrpc: '2.0',
  id: 2,
  method: 'tools/list',
  params: { _meta: meta },
});

/** Opens a WebSocket session and returns its id (from the gateway's first-frame notification). */
async function openWsSession(base: string): Promise<{ ws: WebSocket; sessionId: string }> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws`, 'mcp', {
    headers: { 'x-mcp-client-id': CLIENT },
  });
  const sessionId = await new Promise<string>((ok, fail) => {
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.method === 'notifications/gateway/session') ok(msg.params.sessionId);
    });
    ws.once('error', fail);
    ws.once('close', () => fail(new Error('closed before the session notification')));
  });
  return { ws, sessionId };
}

function postToSession(base: string, sessionId: string, body: string) {
  return raw(base, {
    headers: {
      'content-type': 'application/json',
      accept: BOTH,
      'mcp-protocol-version': '2025-03-26',
      'mcp-session-id': sessionId,
      'x-mcp-client-id': CLIENT,
    },
    body,
  });
}

/** Records what would end the process (with no listener, Node exits on either). */
const fatal: unknown[] = [];
const onFatal = (err: unknown) => fatal.push(err);

function internalErrors(gw: RunningGateway, entry: string): number {
  return gw.gateway.app.get(GatewayMetrics).internalErrors.get(entry) ?? 0;
}

async function assertServedAfterwards(base: string): Promise<void> {
  const res = await raw(base, { headers: modernHeaders, body: goodToolsList });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.id, 2);
  assert.ok(Array.isArray(res.json.result.tools), res.text);
}

before(() => {
  process.on('unhandledRejection', onFatal);
  process.on('uncaughtException', onFatal);
});
after(() => {
  process.off('unhandledRejection', onFatal);
  process.off('uncaughtException', onFatal);
});

describe('the measured crashes, with the default JSON depth bound', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway();
  });
  after(() => gw.close());

  it('a 2026-07-28 tools/list with 10,000 nested arrays → 400 −32600, nothing fatal', async () => {
    const res = await raw(gw.url, { headers: modernHeaders, body: deepToolsList(10_000) });
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.error.code, ErrorCode.InvalidRequest, res.text);
    assert.match(res.json.error.message, /nest/i);
    assert.deepEqual(fatal, []);
    await assertServedAfterwards(gw.url);
  });

  it('a deeply nested 2025-03-26 batch posted to a WebSocket session → 400 −32600, nothing fatal', async () => {
    const { ws, sessionId } = await openWsSession(gw.url);
    try {
      const res = await postToSession(gw.url, sessionId, deepBatch(10_000));
      assert.equal(res.status, 400, res.text);
      assert.equal(res.json.error.code, ErrorCode.InvalidRequest, res.text);
      assert.deepEqual(fatal, []);
      await assertServedAfterwards(gw.url);
    } finally {
      ws.terminate();
    }
  });
});

describe('the error boundary, with the depth bound lifted so the inputs reach the code that overflows', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway({ maxJsonDepth: 100_000 });
  });
  after(() => gw.close());

  it('sessionless bridge: 500 −32603 with a correlation id, counted under "mcp", the process lives', async () => {
    const before = internalErrors(gw, 'mcp');
    const res = await raw(gw.url, { headers: modernHeaders, body: deepToolsList(10_000) });
    assert.equal(res.status, 500, res.text);
    assert.equal(res.json.jsonrpc, '2.0');
    assert.equal(res.json.error.code, ErrorCode.InternalError, res.text);
    assert.equal(typeof res.json.error.data?.correlationId, 'string', res.text);
    assert.equal(internalErrors(gw, 'mcp'), before + 1);
    assert.deepEqual(fatal, []);
    await assertServedAfterwards(gw.url);
  });

  it('the same request again, now that the bridge is up (synchronous path): 500 −32603, counted', async () => {
    const before = internalErrors(gw, 'mcp');
    const res = await raw(gw.url, { headers: modernHeaders, body: deepToolsList(10_000) });
    assert.equal(res.status, 500, res.text);
    assert.equal(res.json.error.code, ErrorCode.InternalError, res.text);
    assert.equal(internalErrors(gw, 'mcp'), before + 1);
    assert.deepEqual(fatal, []);
    await assertServedAfterwards(gw.url);
  });

  it('transport-switch continuation: 500 −32603, counted under "mcp", the process lives', async () => {
    const { ws, sessionId } = await openWsSession(gw.url);
    try {
      const before = internalErrors(gw, 'mcp');
      const res = await postToSession(gw.url, sessionId, deepBatch(10_000));
      assert.equal(res.status, 500, res.text);
      assert.equal(res.json.error.code, ErrorCode.InternalError, res.text);
      assert.equal(internalErrors(gw, 'mcp'), before + 1);
      assert.deepEqual(fatal, []);
      await assertServedAfterwards(gw.url);
    } finally {
      ws.terminate();
    }
  });
});

/**
 * The other entry points, reached with crafted input and a real stdio upstream (which serialises
 * each message it writes): a 2025-03-26 batch whose item is nested 10,000 deep overflows the stack
 * while it is handed to the upstream. Before the boundaries, POST /messages ended the process
 * (an uncaught exception in the request's 'end' handler).
 */
describe('the error boundary of POST /messages and of a WebSocket frame', () => {
  const PROBE = join(__dirname, 'fixtures', 'streamable-http-probe-server.js');
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway({
      maxJsonDepth: 100_000,
      services: { probe: { replicas: [{ transport: 'stdio', command: process.execPath, args: [PROBE] }] } },
      defaultService: 'probe',
    });
  });
  after(() => gw.close());

  it('POST /messages: counted under "messages", the process lives and the session is served afterwards', async () => {
    const res = await fetch(`${gw.url}/sse`, {
      headers: { accept: 'text/event-stream', 'x-mcp-client-id': CLIENT },
    });
    assert.equal(res.status, 200);
    const reader = new SseReader(res);
    try {
      const endpoint = await reader.next();
      assert.equal(endpoint?.event, 'endpoint');
      const postUrl = new URL(endpoint!.data, gw.url).toString();
      const post = (body: string) =>
        fetch(postUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-mcp-client-id': CLIENT },
          body,
        });
      const before = internalErrors(gw, 'messages');
      // The 202 is out before the message is handed over: the boundary can only end the (finished) response.
      const refused = await post(deepBatch(10_000));
      assert.equal(refused.status, 202);
      await refused.text();
      assert.equal(internalErrors(gw, 'messages'), before + 1);
      assert.deepEqual(fatal, []);
      const init = {
        jsonrpc: '2.0',
        id: 'init',
        method: 'initialize',
        params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 't', version: '1' } },
      };
      assert.equal((await post(JSON.stringify(init))).status, 202);
      const answer = await reader.nextMessage();
      assert.equal(answer?.message.id, 'init');
    } finally {
      await reader.cancel();
    }
  });

  it('a WebSocket frame: close 1011, counted under "ws_message", a new connection is served', async () => {
    const open = async () => {
      const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/ws`, 'mcp');
      const frames: any[] = [];
      ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
      const closed = new Promise<number>((ok) => ws.once('close', (code) => ok(code)));
      await new Promise((ok, fail) => {
        ws.once('open', ok);
        ws.once('error', fail);
      });
      const answer = async (id: string) => {
        const deadline = Date.now() + 10_000;
        while (!frames.some((f) => f.id === id)) {
          if (Date.now() > deadline) throw new Error(`no answer to ${id}`);
          await new Promise((r) => setTimeout(r, 10));
        }
        return frames.find((f) => f.id === id);
      };
      ws.send(
        JSON.stringify({
          jsonrpc: '2.0',
          id: 'init',
          method: 'initialize',
          params: {
            protocolVersion: '2025-03-26',
            capabilities: {},
            clientInfo: { name: 't', version: '1' },
          },
        }),
      );
      await answer('init');
      return { ws, closed, answer };
    };
    const first = await open();
    const before = internalErrors(gw, 'ws_message');
    first.ws.send(deepBatch(10_000));
    assert.equal(await first.closed, 1011);
    assert.equal(internalErrors(gw, 'ws_message'), before + 1);
    assert.deepEqual(fatal, []);
    const second = await open();
    second.ws.send(JSON.stringify({ jsonrpc: '2.0', id: 'list', method: 'tools/list' }));
    assert.ok(Array.isArray((await second.answer('list')).result.tools));
    second.ws.close();
    await second.closed;
  });
});
