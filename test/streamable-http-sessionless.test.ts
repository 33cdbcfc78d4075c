import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { BOTH, messagesOf, raw, readSse } from './helpers/streamable-http-client';

const MODERN = '2026-07-28';
const PROBE = join(__dirname, 'fixtures', 'streamable-http-probe-server.js');
const CONFORMANCE = join(__dirname, 'fixtures', 'conformance-server.js');

function meta(extra: Record<string, unknown> = {}) {
  return {
    'io.modelcontextprotocol/protocolVersion': MODERN,
    'io.modelcontextprotocol/clientCapabilities': {},
    'io.modelcontextprotocol/clientInfo': { name: 'modern-test', version: '1.0.0' },
    ...extra,
  };
}

function modernHeaders(method: string, name?: string): Record<string, string> {
  const h: Record<string, string> = {
    'content-type': 'application/json',
    accept: BOTH,
    'mcp-protocol-version': MODERN,
    'mcp-method': method,
  };
  if (name !== undefined) h['mcp-name'] = name;
  return h;
}

function toolCall(
  id: number | string,
  name: string,
  args: Record<string, unknown>,
  extraMeta?: Record<string, unknown>,
) {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: args, _meta: meta(extraMeta) },
  });
}

describe('Streamable HTTP 2026-07-28 (sessionless), bridged to initialize-based upstreams', () => {
  let gw: RunningGateway;
  let base: string;

  before(async () => {
    gw = await startGateway({
      services: {
        demo: { replicas: [{ transport: 'embedded' }] },
        probe: { replicas: [{ transport: 'stdio', command: process.execPath, args: [PROBE] }] },
      },
      defaultService: 'demo',
    });
    base = gw.url;
  });
  after(async () => {
    await gw.close();
  });

  it('answers a tools/call with JSON: the client id restored, resultType and serverInfo added, no session minted', async () => {
    const res = await raw(base, {
      headers: { ...modernHeaders('tools/call', 'echo'), 'mcp-session-id': 'ignored' },
      body: toolCall('req-1', 'echo', { text: 'modern hello' }),
    });
    assert.equal(res.status, 200, res.text);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.equal(res.headers['mcp-session-id'], undefined);
    assert.equal(res.json.id, 'req-1');
    assert.deepEqual(res.json.result.content, [{ type: 'text', text: 'modern hello' }]);
    assert.equal(res.json.result.resultType, 'complete');
    assert.equal(res.json.result._meta['io.modelcontextprotocol/serverInfo'].name, 'mcp-gateway-demo');
  });

  it('a base64-encoded Mcp-Name is decoded before the comparison', async () => {
    const res = await raw(base, {
      headers: modernHeaders('tools/call', `=?base64?${Buffer.from('echo').toString('base64')}?=`),
      body: toolCall(2, 'echo', { text: 'b64' }),
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.result.content[0].text, 'b64');
  });

  it('independent requests with the same id get their own answers', async () => {
    const texts = ['alpha', 'beta', 'gamma', 'delta'];
    const answers = await Promise.all(
      texts.map((t) =>
        raw(base, { headers: modernHeaders('tools/call', 'echo'), body: toolCall(1, 'echo', { text: t }) }),
      ),
    );
    assert.deepEqual(
      answers.map((a) => [a.json.id, a.json.result.content[0].text]),
      texts.map((t) => [1, t]),
    );
  });

  it('tools/list carries the cache fields 2026-07-28 requires', async () => {
    const res = await raw(base, {
      headers: modernHeaders('tools/list'),
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list', params: { _meta: meta() } }),
    });
    assert.equal(res.status, 200, res.text);
    assert.ok(res.json.result.tools.some((t: { name: string }) => t.name === 'echo'));
    assert.equal(typeof res.json.result.ttlMs, 'number');
    assert.ok(['public', 'private'].includes(res.json.result.cacheScope));
  });

  it('server/discover answers from the upstream initialize result', async () => {
    const res = await raw(base, {
      headers: modernHeaders('server/discover'),
      body: JSON.stringify({ jsonrpc: '2.0', id: 'd', method: 'server/discover', params: { _meta: meta() } }),
    });
    assert.equal(res.status, 200, res.text);
    const r = res.json.result;
    assert.equal(res.json.id, 'd');
    assert.equal(r.resultType, 'complete');
    assert.ok(r.supportedVersions.includes(MODERN));
    assert.ok(r.capabilities.tools);
    assert.equal(r._meta['io.modelcontextprotocol/serverInfo'].name, 'mcp-gateway-demo');
  });

  it('streams progress as SSE without event ids (X-Accel-Buffering: no), tokens restored, no unrequested logs', async () => {
    const res = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: modernHeaders('tools/call', 'long_task'),
      body: toolCall(4, 'long_task', { duration: 0.3, steps: 3 }, { progressToken: 'mine' }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    assert.equal(res.headers.get('x-accel-buffering'), 'no');
    const { events, ended } = await readSse(res);
    assert.ok(ended);
    assert.ok(
      events.every((e) => e.id === undefined),
      'no event ids: 2026-07-28 streams are not resumable',
    );
    const messages = messagesOf(events);
    assert.deepEqual(
      messages
        .filter((m) => m.method === 'notifications/progress')
        .map((m) => [m.params.progressToken, m.params.progress]),
      [
        ['mine', 1],
        ['mine', 2],
        ['mine', 3],
      ],
    );
    assert.equal(messages.filter((m) => m.method === 'notifications/message').length, 0);
    assert.equal(messages.at(-1).id, 4);
    assert.equal(messages.at(-1).result.content[0].text, 'Long task finished: 3 steps in 0.3 s');
  });

  it('delivers log messages when the request asks for them with _meta logLevel', async () => {
    const res = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: modernHeaders('tools/call', 'long_task'),
      body: toolCall(
        5,
        'long_task',
        { duration: 0.2, steps: 2 },
        { 'io.modelcontextprotocol/logLevel': 'info' },
      ),
    });
    const { events } = await readSse(res);
    const logs = messagesOf(events).filter((m) => m.method === 'notifications/message');
    assert.equal(logs.length, 2);
  });

  it('a method the upstream does not know is HTTP 404 with −32601', async () => {
    const res = await raw(base, {
      headers: modernHeaders('no/such/method'),
      body: JSON.stringify({ jsonrpc: '2.0', id: 'nm', method: 'no/such/method', params: { _meta: meta() } }),
    });
    assert.equal(res.status, 404, res.text);
    assert.equal(res.json.id, 'nm');
    assert.equal(res.json.error.code, -32601);
  });

  it('a notification POST is accepted with 202', async () => {
    const res = await raw(base, {
      headers: modernHeaders('notifications/whatever'),
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/whatever' }),
    });
    assert.equal(res.status, 202);
    assert.equal(res.text, '');
  });

  describe('request _meta members of the wrong type are 400 / −32602 naming the member', () => {
    // Each would otherwise become the hidden session's initialize, which the upstream refuses (502).
    const V = 'io.modelcontextprotocol/protocolVersion';
    const CAPS = 'io.modelcontextprotocol/clientCapabilities';
    const INFO = 'io.modelcontextprotocol/clientInfo';
    const LEVEL = 'io.modelcontextprotocol/logLevel';
    const rows: Array<[string, Record<string, unknown>, string]> = [
      ['clientInfo an array', { [INFO]: [] }, INFO],
      ['clientInfo without a version', { [INFO]: { name: 'x' } }, INFO],
      ['clientInfo with a numeric name', { [INFO]: { name: 1, version: '1' } }, INFO],
      ['clientInfo.icons not an array', { [INFO]: { name: 'x', version: '1', icons: 'i' } }, INFO],
      ['clientInfo.title not a string', { [INFO]: { name: 'x', version: '1', title: {} } }, INFO],
      ['clientCapabilities a string', { [CAPS]: 'all' }, CAPS],
      ['clientCapabilities an array', { [CAPS]: [] }, CAPS],
      ['clientCapabilities.experimental of non-objects', { [CAPS]: { experimental: { x: 1 } } }, CAPS],
      ['clientCapabilities.sampling not an object', { [CAPS]: { sampling: true } }, CAPS],
      ['protocolVersion a number', { [V]: 20260728 }, V],
      ['protocolVersion missing', { [V]: undefined }, V],
      ['logLevel not a level', { [LEVEL]: 'loud' }, LEVEL],
    ];
    rows.forEach(([name, extra, member], i) => {
      it(`${name} → 400 / −32602`, async () => {
        // A client of its own: its first request is the one that would initialize its bridge.
        const headers = { ...modernHeaders('tools/call', 'echo'), 'x-mcp-client-id': `bad-meta-${i}` };
        const res = await raw(base, { headers, body: toolCall(`m${i}`, 'echo', { text: 'x' }, extra) });
        assert.equal(res.status, 400, res.text);
        assert.equal(res.json.id, `m${i}`);
        assert.equal(res.json.error.code, -32602);
        assert.ok(res.json.error.message.includes(member), res.json.error.message);
        const good = await raw(base, { headers, body: toolCall('ok', 'echo', { text: 'after' }) });
        assert.equal(good.status, 200, good.text);
        assert.equal(good.json.result.content[0].text, 'after', 'the same client is served right after');
      });
    });

    it('well-typed members the schema allows are served: icons, titles, extensions, sampling, an unknown member', async () => {
      const res = await raw(base, {
        headers: { ...modernHeaders('tools/call', 'echo'), 'x-mcp-client-id': 'good-meta' },
        body: toolCall(
          'g',
          'echo',
          { text: 'fine' },
          {
            [INFO]: {
              name: 'n',
              version: '1',
              title: 'T',
              icons: [{ src: 'data:,', sizes: ['any'], theme: 'dark' }],
            },
            [CAPS]: {
              experimental: { e: {} },
              extensions: { 'io.example/x': {} },
              sampling: { tools: {} },
              elicitation: {},
              roots: {},
              custom: 5,
            },
            [LEVEL]: 'debug',
          },
        ),
      });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.result.content[0].text, 'fine');
    });

    it('a tasks capability (not a 2026-07-28 member) is not forwarded to the upstream initialize', async () => {
      const res = await raw(base, {
        headers: { ...modernHeaders('tools/call', 'echo'), 'x-mcp-client-id': 'tasks-meta' },
        body: toolCall('t', 'echo', { text: 'tasks' }, { [CAPS]: { tasks: 5 } }),
      });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.result.content[0].text, 'tasks');
    });
  });

  it('closing the response stream before the answer cancels the request upstream', async () => {
    const controller = new AbortController();
    const res = await fetch(`${base}/mcp/probe`, {
      method: 'POST',
      headers: modernHeaders('tools/call', 'wait_for_cancel'),
      body: toolCall('w1', 'wait_for_cancel', {}, { progressToken: 'w' }),
      signal: controller.signal,
    });
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    const first = await readSse(res, (events) => events.length >= 1);
    assert.equal(messagesOf(first.events)[0].method, 'notifications/progress');
    controller.abort();

    let seen: Array<{ requestId: string; reason: string }> = [];
    for (let i = 0; i < 50 && seen.length === 0; i++) {
      await sleep(50);
      const probe = await raw(base, {
        path: '/mcp/probe',
        headers: modernHeaders('tools/call', 'cancellations'),
        body: toolCall(`c${i}`, 'cancellations', {}),
      });
      assert.equal(probe.status, 200, probe.text);
      seen = JSON.parse(probe.json.result.content[0].text);
    }
    assert.equal(seen.length, 1, 'the upstream saw exactly one cancellation');
    assert.match(seen[0].reason, /closed the response stream/);
    assert.notEqual(seen[0].requestId, 'w1', 'upstream ids are the gateway’s own, never the client’s');
  });
});

describe('2026-07-28 bridge: Mcp-Param headers, capability errors, subscriptions/listen', () => {
  let gw: RunningGateway;
  let base: string;
  const PATH = '/mcp/conf';

  before(async () => {
    gw = await startGateway({
      services: {
        conf: { replicas: [{ transport: 'stdio', command: process.execPath, args: [CONFORMANCE] }] },
      },
      defaultService: 'conf',
    });
    base = gw.url;
  });
  after(async () => {
    await gw.close();
  });

  /** A tools/call of test_custom_header (its `region` argument carries x-mcp-header: Region). */
  function region(id: number | string, value: unknown, header: string | undefined, client = 'param-client') {
    const headers: Record<string, string> = {
      ...modernHeaders('tools/call', 'test_custom_header'),
      'x-mcp-client-id': client,
    };
    if (header !== undefined) headers['mcp-param-region'] = header;
    return raw(base, {
      path: PATH,
      headers,
      body: toolCall(id, 'test_custom_header', value === undefined ? {} : { region: value }),
    });
  }

  it('accepts an Mcp-Param header that matches the body, plain or base64-encoded', async () => {
    const plain = await region('p1', 'us-west1', 'us-west1');
    assert.equal(plain.status, 200, plain.text);
    assert.equal(plain.json.result.content[0].text, 'Region: us-west1');
    const encoded = await region(
      'p2',
      'Hello, 世界',
      `=?base64?${Buffer.from('Hello, 世界').toString('base64')}?=`,
    );
    assert.equal(encoded.status, 200, encoded.text);
    assert.equal(encoded.json.result.content[0].text, 'Region: Hello, 世界');
    // Without both sentinel markers the value is literal.
    const literal = await region('p3', '=?base64?SGVsbG8=', '=?base64?SGVsbG8=');
    assert.equal(literal.status, 200, literal.text);
  });

  it('refuses a missing, mismatched or malformed Mcp-Param header with 400 / −32020 and the request id', async () => {
    const cases: Array<[string, unknown, string | undefined]> = [
      ['missing', 'test-value', undefined],
      ['mismatch', 'us-west1', 'eu-north1'],
      ['bad-padding', 'Hello', '=?base64?SGVsbG8?='],
      ['bad-chars', 'Hello', '=?base64?SGVs!!!bG8=?='],
      ['no-body-value', undefined, 'us-west1'],
    ];
    for (const [id, value, header] of cases) {
      const res = await region(id, value, header);
      assert.equal(res.status, 400, `${id}: ${res.text}`);
      assert.equal(res.json.error.code, -32020, id);
      assert.equal(res.json.id, id);
      assert.match(res.json.error.message, /Mcp-Param-Region/);
    }
  });

  it('learns the schema on its own (no tools/list by the client first) and ignores Mcp-Param headers nobody declared', async () => {
    const fresh = await region('f1', 'x', undefined, 'param-client-fresh');
    assert.equal(fresh.status, 400, fresh.text);
    const other = await raw(base, {
      path: PATH,
      headers: {
        ...modernHeaders('tools/call', 'test_simple_text'),
        'x-mcp-client-id': 'param-client-fresh',
        'mcp-param-unrelated': 'anything',
      },
      body: toolCall('f2', 'test_simple_text', {}),
    });
    assert.equal(other.status, 200, other.text);
  });

  it('an upstream that needs an undeclared capability is 400 / −32021 naming it', async () => {
    const res = await raw(base, {
      path: PATH,
      headers: modernHeaders('tools/call', 'test_missing_capability'),
      body: toolCall(401, 'test_missing_capability', {}),
    });
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.id, 401);
    assert.equal(res.json.error.code, -32021);
    assert.deepEqual(res.json.error.data.requiredCapabilities, { sampling: {} });
  });

  /** Opens subscriptions/listen; returns the response and an SSE reader over it. */
  async function listen(id: number | string, notifications: Record<string, unknown>, client: string) {
    const controller = new AbortController();
    const res = await fetch(`${base}${PATH}`, {
      method: 'POST',
      headers: { ...modernHeaders('subscriptions/listen'), 'x-mcp-client-id': client },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id,
        method: 'subscriptions/listen',
        params: { _meta: meta(), notifications },
      }),
      signal: controller.signal,
    });
    return { res, controller };
  }

  function trigger(tool: string, client: string) {
    return raw(base, {
      path: PATH,
      headers: { ...modernHeaders('tools/call', tool), 'x-mcp-client-id': client },
      body: toolCall(`t-${tool}`, tool, {}),
    });
  }

  it('subscriptions/listen: acknowledgment first, then the list_changed it asked for, tagged with its id', async () => {
    const client = 'listen-client';
    const { res, controller } = await listen('sub-1', { toolsListChanged: true }, client);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    let triggered = false;
    const { events } = await readSse(res, (evs) => {
      if (evs.length === 1 && !triggered) {
        triggered = true;
        void trigger('test_trigger_tool_change', client);
      }
      return evs.length >= 2;
    });
    controller.abort();
    const [ack, change] = messagesOf(events);
    assert.equal(ack.method, 'notifications/subscriptions/acknowledged');
    assert.equal(ack.params._meta['io.modelcontextprotocol/subscriptionId'], 'sub-1');
    assert.deepEqual(ack.params.notifications, { toolsListChanged: true });
    assert.equal(change.method, 'notifications/tools/list_changed');
    assert.equal(change.params._meta['io.modelcontextprotocol/subscriptionId'], 'sub-1');
  });

  it('subscriptions/listen: notifications outside the filter are not sent', async () => {
    const client = 'filter-client';
    const { res, controller } = await listen(7, { promptsListChanged: true }, client);
    // Tools change first, prompts second: a leaked tools/list_changed would be the second message.
    const reading = readSse(res, (evs) => evs.length >= 2);
    const first = await trigger('test_trigger_tool_change', client);
    assert.equal(first.status, 200, first.text);
    const second = await trigger('test_trigger_prompt_change', client);
    assert.equal(second.status, 200, second.text);
    const messages = messagesOf((await reading).events);
    controller.abort();
    assert.deepEqual(
      messages.map((m) => [m.method, m.params._meta['io.modelcontextprotocol/subscriptionId']]),
      [
        ['notifications/subscriptions/acknowledged', 7],
        ['notifications/prompts/list_changed', 7],
      ],
    );
  });

  it('subscriptions/listen without a notifications filter is 400 / −32602 with the id', async () => {
    const res = await raw(base, {
      path: PATH,
      headers: modernHeaders('subscriptions/listen'),
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 'l0',
        method: 'subscriptions/listen',
        params: { _meta: meta() },
      }),
    });
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.id, 'l0');
    assert.equal(res.json.error.code, -32602);
  });
});

describe('Streamable HTTP with 2026-07-28 disabled', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway({ enableSessionless: false });
  });
  after(async () => {
    await gw.close();
  });

  it('refuses the version with 400 / −32022 and lists what is supported', async () => {
    const res = await raw(gw.url, {
      headers: modernHeaders('tools/call', 'echo'),
      body: toolCall(1, 'echo', { text: 'x' }),
    });
    assert.equal(res.status, 400);
    assert.equal(res.json.error.code, -32022);
    assert.ok(!res.json.error.data.supported.includes(MODERN));
    assert.ok(res.json.error.data.supported.includes('2025-11-25'));
  });
});

describe('2026-07-28 Mcp-Param-* headers reach an HTTP upstream', () => {
  let gw: RunningGateway;
  let upstream: import('node:http').Server;
  const seen: Array<Record<string, unknown>> = [];

  before(async () => {
    const { createServer } = await import('node:http');
    const { McpServer } = await import('@modelcontextprotocol/sdk/server/mcp.js');
    const { StreamableHTTPServerTransport } =
      await import('@modelcontextprotocol/sdk/server/streamableHttp.js');
    const { z } = await import('zod');
    // A real SDK server over Streamable HTTP (stateless mode: one server per request), recording headers.
    upstream = createServer((req, res) => {
      seen.push({ ...req.headers });
      const server = new McpServer({ name: 'header-probe', version: '1.0.0' });
      server.registerTool('echo', { inputSchema: { text: z.string() } }, ({ text }) => ({
        content: [{ type: 'text', text }],
      }));
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: undefined,
        enableJsonResponse: true,
      });
      res.on('close', () => void transport.close());
      void server.connect(transport).then(() => transport.handleRequest(req, res));
    });
    await new Promise<void>((ok) => upstream.listen(0, '127.0.0.1', () => ok()));
    const port = (upstream.address() as { port: number }).port;
    gw = await startGateway({
      services: {
        http: { replicas: [{ transport: 'streamable-http', url: `http://127.0.0.1:${port}/mcp` }] },
      },
      defaultService: 'http',
    });
  });
  after(async () => {
    await gw.close();
    await new Promise<void>((ok) => upstream.close(() => ok()));
  });

  it('an Mcp-Param header no tool declares is forwarded with that request only', async () => {
    const res = await raw(gw.url, {
      headers: { ...modernHeaders('tools/call', 'echo'), 'mcp-param-trace-tenant': 'acme' },
      body: toolCall('p-1', 'echo', { text: 'with a param header' }),
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.result.content, [{ type: 'text', text: 'with a param header' }]);
    const calls = seen.filter((h) => h['mcp-param-trace-tenant'] !== undefined);
    assert.equal(calls.length, 1, 'exactly the one tools/call POST carried it');
    assert.equal(calls[0]['mcp-param-trace-tenant'], 'acme');
    const plain = await raw(gw.url, {
      headers: modernHeaders('tools/call', 'echo'),
      body: toolCall('p-2', 'echo', { text: 'without' }),
    });
    assert.equal(plain.status, 200, plain.text);
    assert.equal(seen.filter((h) => h['mcp-param-trace-tenant'] !== undefined).length, 1, 'not sticky');
  });
});
