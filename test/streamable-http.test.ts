import { ErrorCode } from '../libs/protocol/src';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { startGateway, type RunningGateway } from './helpers/gateway';
import {
  BOTH,
  call,
  messagesOf,
  openSession,
  raw,
  readSse,
  sessionHeaders,
} from './helpers/streamable-http-client';

const JSON_CT = 'application/json';
const MODERN = '2026-07-28';
const modernMeta = {
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientCapabilities': {},
};

describe('Streamable HTTP transport', () => {
  let gw: RunningGateway;
  let base: string;
  let session0618: string;
  let session1125: string;

  before(async () => {
    gw = await startGateway({ maxBodyBytes: 4096 });
    base = gw.url;
    session0618 = await openSession(base, '2025-06-18');
    session1125 = await openSession(base, '2025-11-25');
  });
  after(async () => {
    await gw.close();
  });

  describe('refuses bad input with the right status and JSON-RPC error', () => {
    const ok = () => ({ 'content-type': JSON_CT, accept: BOTH });
    const echo = JSON.stringify(call(1, 'echo', { text: 'x' }));
    const modern = (extra: Record<string, string>) => ({ ...ok(), 'mcp-protocol-version': MODERN, ...extra });
    const modernCall = (body: Record<string, unknown>) =>
      JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: { name: 'echo', arguments: { text: 'x' }, ...body },
      });
    // [name, request (a function of the session ids), status, JSON-RPC code or undefined, metric kind,
    //  and whether to check right after that the session still answers]
    type Row = [
      string,
      () => { method?: string; path?: string; headers?: Record<string, string>; body?: string },
      number,
      number | undefined,
      string,
      'then the session works'?,
    ];
    const table: Row[] = [
      [
        'foreign Origin',
        () => ({ headers: { ...ok(), origin: 'http://evil.example.com' }, body: echo }),
        403,
        -32600,
        'forbidden_origin',
      ],
      [
        'foreign Host (DNS rebinding)',
        () => ({ headers: { ...ok(), host: 'evil.example.com' }, body: echo }),
        403,
        -32600,
        'forbidden_host',
      ],
      [
        'unknown service',
        () => ({ path: '/mcp/nope', headers: ok(), body: echo }),
        404,
        -32600,
        'unknown_service',
      ],
      [
        'body over maxBodyBytes',
        () => ({ headers: ok(), body: JSON.stringify(call(1, 'echo', { text: 'x'.repeat(5000) })) }),
        413,
        -32600,
        'body_too_large',
      ],
      [
        'Content-Type text/plain',
        () => ({ headers: { ...ok(), 'content-type': 'text/plain' }, body: echo }),
        415,
        -32600,
        'unsupported_media_type',
      ],
      [
        'POST Accept without text/event-stream',
        () => ({ headers: { ...ok(), accept: 'application/json' }, body: echo }),
        406,
        -32600,
        'not_acceptable',
      ],
      [
        'POST Accept without application/json',
        () => ({ headers: { ...ok(), accept: 'text/event-stream' }, body: echo }),
        406,
        -32600,
        'not_acceptable',
      ],
      [
        'GET Accept without text/event-stream',
        () => ({ method: 'GET', headers: { accept: 'application/json', 'mcp-session-id': session0618 } }),
        406,
        -32600,
        'not_acceptable',
      ],
      [
        'unsupported MCP-Protocol-Version',
        () => ({ headers: { ...sessionHeaders(session0618, '1999-01-01') }, body: echo }),
        400,
        -32022,
        'unsupported_protocol_version',
      ],
      [
        'malformed JSON',
        () => ({ headers: sessionHeaders(session0618, '2025-06-18'), body: '{"jsonrpc":' }),
        400,
        -32700,
        'parse_error',
      ],
      [
        'not JSON-RPC',
        () => ({ headers: sessionHeaders(session0618, '2025-06-18'), body: '{"hello":"world"}' }),
        400,
        -32600,
        'invalid_request',
      ],
      // Shapes MCP does not allow: no upstream would ever answer them (issue 6, defect 11).
      ...(
        [
          [
            'params an array',
            '{"jsonrpc":"2.0","id":31,"method":"tools/list","params":[]}',
            -32602,
            'invalid_params',
          ],
          ['a fractional id', '{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}', -32600, 'invalid_request'],
          [
            'an integer id beyond 2^53',
            '{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/list"}',
            -32600,
            'invalid_request',
          ],
          [
            '_meta not an object',
            '{"jsonrpc":"2.0","id":32,"method":"tools/list","params":{"_meta":"x"}}',
            -32602,
            'invalid_params',
          ],
          // A progress token is a string or an integer: 1e400 parses to Infinity and would go up as null.
          [
            'a progressToken of 400 digits',
            `{"jsonrpc":"2.0","id":37,"method":"tools/list","params":{"_meta":{"progressToken":${'9'.repeat(400)}}}}`,
            -32602,
            'invalid_params',
          ],
          [
            'a progressToken that is not a string or an integer',
            '{"jsonrpc":"2.0","id":38,"method":"tools/list","params":{"_meta":{"progressToken":{"t":1}}}}',
            -32602,
            'invalid_params',
          ],
          // Members JSON-RPC does not define: the SDK's servers drop such a request unanswered.
          [
            'a request that also carries result',
            '{"jsonrpc":"2.0","id":39,"method":"tools/list","result":{}}',
            -32600,
            'invalid_request',
          ],
          [
            'a response that carries params: null',
            '{"jsonrpc":"2.0","id":40,"params":null,"error":{"code":1,"message":"m"}}',
            -32600,
            'invalid_request',
          ],
          [
            'nesting deeper than MAX_JSON_DEPTH (64)',
            `{"jsonrpc":"2.0","id":33,"method":"tools/list","params":{"a":${'['.repeat(100)}${']'.repeat(100)}}}`,
            -32600,
            'invalid_request',
          ],
        ] as const
      ).map(
        ([name, body, code, kind]) =>
          [
            name,
            () => ({ headers: sessionHeaders(session0618, '2025-06-18'), body }),
            400,
            code,
            kind,
            'then the session works',
          ] satisfies Row,
      ),
      [
        '2026: params an array',
        () => ({
          headers: modern({ 'mcp-method': 'tools/list' }),
          body: '{"jsonrpc":"2.0","id":34,"method":"tools/list","params":[]}',
        }),
        400,
        -32602,
        'invalid_params',
      ],
      [
        '2026: a fractional id',
        () => ({
          headers: modern({ 'mcp-method': 'tools/list' }),
          body: JSON.stringify({
            jsonrpc: '2.0',
            id: 2.5,
            method: 'tools/list',
            params: { _meta: modernMeta },
          }),
        }),
        400,
        -32600,
        'invalid_request',
      ],
      [
        '2026: _meta an array',
        () => ({
          headers: modern({ 'mcp-method': 'tools/list' }),
          body: '{"jsonrpc":"2.0","id":35,"method":"tools/list","params":{"_meta":[]}}',
        }),
        400,
        -32602,
        'invalid_params',
      ],
      [
        '2026: a response that carries params: null',
        () => ({
          headers: modern({}),
          body: '{"jsonrpc":"2.0","id":"r","params":null,"error":{"code":1,"message":"m"}}',
        }),
        400,
        -32600,
        'invalid_request',
      ],
      [
        '2026: nesting deeper than MAX_JSON_DEPTH',
        () => ({
          headers: modern({ 'mcp-method': 'tools/list' }),
          body: `{"jsonrpc":"2.0","id":36,"method":"tools/list","params":{"_meta":${JSON.stringify(modernMeta)},"a":${'['.repeat(1_000)}${']'.repeat(1_000)}}}`,
        }),
        400,
        -32600,
        'invalid_request',
      ],
      [
        'batch on 2025-06-18',
        () => ({ headers: sessionHeaders(session0618, '2025-06-18'), body: `[${echo}]` }),
        400,
        -32600,
        'batch_not_allowed',
      ],
      [
        'initialize in a batch',
        () => ({
          headers: ok(),
          body: JSON.stringify([{ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} }]),
        }),
        400,
        -32600,
        'invalid_request',
      ],
      [
        'request without Mcp-Session-Id',
        () => ({ headers: ok(), body: echo }),
        400,
        -32600,
        'session_required',
      ],
      [
        'unknown Mcp-Session-Id',
        () => ({ headers: sessionHeaders('no-such-session', undefined), body: echo }),
        404,
        ErrorCode.SessionNotFound,
        'session_not_found',
      ],
      ['PUT', () => ({ method: 'PUT', headers: ok(), body: echo }), 405, -32600, 'method_not_allowed'],
      ['OPTIONS', () => ({ method: 'OPTIONS', headers: {} }), 405, -32600, 'method_not_allowed'],
      [
        'GET without Mcp-Session-Id',
        () => ({ method: 'GET', headers: { accept: 'text/event-stream' } }),
        400,
        -32600,
        'session_required',
      ],
      [
        'GET with a garbage Last-Event-ID',
        () => ({
          method: 'GET',
          headers: {
            accept: 'text/event-stream',
            'mcp-session-id': session1125,
            'last-event-id': 'nonsense',
          },
        }),
        400,
        -32600,
        'bad_last_event_id',
      ],
      [
        'DELETE without Mcp-Session-Id',
        () => ({ method: 'DELETE', headers: {} }),
        400,
        -32600,
        'session_required',
      ],
      [
        'DELETE of an unknown session',
        () => ({ method: 'DELETE', headers: { 'mcp-session-id': 'no-such-session' } }),
        404,
        ErrorCode.SessionNotFound,
        'session_not_found',
      ],
      // 2026-07-28 (sessionless) request metadata
      [
        '2026: Mcp-Method missing',
        () => ({ headers: modern({ 'mcp-name': 'echo' }), body: modernCall({ _meta: modernMeta }) }),
        400,
        -32020,
        'header_mismatch',
      ],
      [
        '2026: Mcp-Method differs from the body',
        () => ({
          headers: modern({ 'mcp-method': 'tools/list', 'mcp-name': 'echo' }),
          body: modernCall({ _meta: modernMeta }),
        }),
        400,
        -32020,
        'header_mismatch',
      ],
      [
        '2026: Mcp-Name missing on tools/call',
        () => ({ headers: modern({ 'mcp-method': 'tools/call' }), body: modernCall({ _meta: modernMeta }) }),
        400,
        -32020,
        'header_mismatch',
      ],
      [
        '2026: Mcp-Name differs from params.name',
        () => ({
          headers: modern({ 'mcp-method': 'tools/call', 'mcp-name': 'long_task' }),
          body: modernCall({ _meta: modernMeta }),
        }),
        400,
        -32020,
        'header_mismatch',
      ],
      [
        '2026: base64 Mcp-Name differs',
        () => ({
          headers: modern({
            'mcp-method': 'tools/call',
            'mcp-name': `=?base64?${Buffer.from('ech0').toString('base64')}?=`,
          }),
          body: modernCall({ _meta: modernMeta }),
        }),
        400,
        -32020,
        'header_mismatch',
      ],
      [
        '2026: Mcp-Name differs from params.uri',
        () => ({
          headers: modern({ 'mcp-method': 'resources/read', 'mcp-name': 'demo://other' }),
          body: JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'resources/read',
            params: { uri: 'demo://readme', _meta: modernMeta },
          }),
        }),
        400,
        -32020,
        'header_mismatch',
      ],
      [
        '2026: _meta protocol version differs from the header',
        () => ({
          headers: modern({ 'mcp-method': 'tools/call', 'mcp-name': 'echo' }),
          body: modernCall({
            _meta: { ...modernMeta, 'io.modelcontextprotocol/protocolVersion': '2025-11-25' },
          }),
        }),
        400,
        -32020,
        'header_mismatch',
      ],
      [
        '2026: _meta without client capabilities',
        () => ({
          headers: modern({ 'mcp-method': 'tools/call', 'mcp-name': 'echo' }),
          body: modernCall({ _meta: { 'io.modelcontextprotocol/protocolVersion': MODERN } }),
        }),
        400,
        -32602,
        'invalid_params',
      ],
      [
        '2026: a removed method (ping)',
        () => ({
          headers: modern({ 'mcp-method': 'ping' }),
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { _meta: modernMeta } }),
        }),
        404,
        -32601,
        'method_not_found',
      ],
      [
        '2026: batch',
        () => ({
          headers: modern({ 'mcp-method': 'tools/call', 'mcp-name': 'echo' }),
          body: `[${modernCall({ _meta: modernMeta })}]`,
        }),
        400,
        -32600,
        'batch_not_allowed',
      ],
      [
        '2026: GET',
        () => ({ method: 'GET', headers: { accept: 'text/event-stream', 'mcp-protocol-version': MODERN } }),
        405,
        -32600,
        'method_not_allowed',
      ],
      [
        '2026: DELETE',
        () => ({ method: 'DELETE', headers: { 'mcp-protocol-version': MODERN } }),
        405,
        -32600,
        'method_not_allowed',
      ],
    ];

    for (const [name, make, status, code, kind, thenWorks] of table) {
      // Bounded: a refusal is immediate, and a request nobody answers must fail its own row.
      it(`${name} → ${status}${code === undefined ? '' : ` / ${code}`}`, { timeout: 20_000 }, async () => {
        const metrics = gw.gateway.app.get(GatewayMetrics);
        const before = metrics.errors.get(kind) ?? 0;
        const res = await raw(base, make());
        assert.equal(res.status, status, res.text);
        assert.match(String(res.headers['content-type']), /^application\/json/);
        assert.equal(res.json?.jsonrpc, '2.0', res.text);
        if (code !== undefined) assert.equal(res.json.error.code, code, res.text);
        assert.equal(typeof res.json.error.message, 'string');
        if (status === 405) assert.ok(res.headers.allow, 'a 405 says what is allowed');
        assert.equal(metrics.errors.get(kind), before + 1, `metric ${kind} counted`);
        if (thenWorks) {
          const after = await raw(base, { headers: sessionHeaders(session0618, '2025-06-18'), body: echo });
          assert.equal(after.status, 200, after.text);
          assert.equal(after.json.result.content[0].text, 'x');
        }
      });
    }

    it('an unsupported version lists the supported ones', async () => {
      const res = await raw(base, { headers: sessionHeaders(session0618, '1999-01-01'), body: echo });
      assert.deepEqual(res.json.error.data.requested, '1999-01-01');
      assert.equal(res.json.id, 1, 'the error carries the request id');
      assert.ok(res.json.error.data.supported.includes('2025-11-25'));
      assert.ok(res.json.error.data.supported.includes(MODERN));
    });

    it('the gateway keeps serving after all of that', async () => {
      const res = await raw(base, { headers: sessionHeaders(session0618, '2025-06-18'), body: echo });
      assert.equal(res.status, 200);
      assert.equal(res.json.result.content[0].text, 'x');
    });
  });

  describe('sessions', () => {
    it('initialize without a header version creates a session with a visible-ASCII, high-entropy id', async () => {
      const ids = new Set<string>();
      for (let i = 0; i < 5; i++) {
        const res = await raw(base, {
          headers: { 'content-type': JSON_CT, accept: BOTH },
          body: JSON.stringify({
            jsonrpc: '2.0',
            id: 'init',
            method: 'initialize',
            params: {
              protocolVersion: '2025-06-18',
              capabilities: {},
              clientInfo: { name: 't', version: '1' },
            },
          }),
        });
        assert.equal(res.status, 200);
        assert.equal(res.json.id, 'init');
        assert.equal(res.json.result.protocolVersion, '2025-06-18');
        const id = res.headers['mcp-session-id'] as string;
        assert.match(id, /^[\x21-\x7e]{22,}$/);
        ids.add(id);
      }
      assert.equal(ids.size, 5);
    });

    it('initialize with an Mcp-Session-Id is refused', async () => {
      const res = await raw(base, {
        headers: sessionHeaders(session0618, undefined),
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {} }),
      });
      assert.equal(res.status, 400);
      assert.equal(res.json.error.code, -32600);
    });

    it('notifications and responses are acknowledged with 202 and no body', async () => {
      const res = await raw(base, {
        headers: sessionHeaders(session0618, '2025-06-18'),
        body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' }),
      });
      assert.equal(res.status, 202);
      assert.equal(res.text, '');
      const resp = await raw(base, {
        headers: sessionHeaders(session0618, '2025-06-18'),
        body: JSON.stringify({ jsonrpc: '2.0', id: 'nobody-asked', result: {} }),
      });
      assert.equal(resp.status, 202);
      assert.equal(resp.text, '');
    });

    it('the negotiated version governs, whatever MCP-Protocol-Version says', async () => {
      const batch = await raw(base, {
        headers: sessionHeaders(session0618, '2025-03-26'),
        body: JSON.stringify([call('b1', 'echo', { text: 'x' })]),
      });
      assert.equal(
        batch.status,
        400,
        'no batches on a 2025-06-18 session even when the header claims 2025-03-26',
      );
      const res = await raw(base, {
        headers: sessionHeaders(session1125, '2025-03-26'),
        body: JSON.stringify(call('h1', 'echo', { text: 'still primed' })),
      });
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    });

    it('a request without MCP-Protocol-Version uses the negotiated version', async () => {
      const res = await raw(base, {
        headers: sessionHeaders(session0618, undefined),
        body: JSON.stringify(call(5, 'echo', { text: 'no header' })),
      });
      assert.equal(res.status, 200);
      assert.equal(res.json.result.content[0].text, 'no header');
    });

    it('DELETE ends the session; afterwards it is 404 for POST, GET and DELETE', async () => {
      const id = await openSession(base, '2025-06-18');
      const del = await raw(base, {
        method: 'DELETE',
        headers: { 'mcp-session-id': id, 'mcp-protocol-version': '2025-06-18' },
      });
      assert.equal(del.status, 200);
      const post = await raw(base, {
        headers: sessionHeaders(id, '2025-06-18'),
        body: JSON.stringify(call(1, 'echo', { text: 'x' })),
      });
      assert.equal(post.status, 404);
      assert.equal(post.json.error.code, ErrorCode.SessionNotFound);
      const get = await raw(base, {
        method: 'GET',
        headers: { accept: 'text/event-stream', 'mcp-session-id': id },
      });
      assert.equal(get.status, 404);
      const again = await raw(base, { method: 'DELETE', headers: { 'mcp-session-id': id } });
      assert.equal(again.status, 404);
    });

    it('a session is bound to its service path', async () => {
      const res = await raw(base, {
        path: '/mcp/demo',
        headers: sessionHeaders(session0618, '2025-06-18'),
        body: JSON.stringify(call('svc', 'echo', { text: 'same service' })),
      });
      assert.equal(res.status, 200, 'the default service is also reachable by name');
      assert.equal(res.json.result.content[0].text, 'same service');
    });
  });

  describe('response format', () => {
    it('2025-06-18: a quick answer is application/json', async () => {
      const res = await fetch(`${base}/mcp`, {
        method: 'POST',
        headers: sessionHeaders(session0618, '2025-06-18'),
        body: JSON.stringify(call('a', 'echo', { text: 'json please' })),
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type')!, /^application\/json/);
      const body = (await res.json()) as any;
      assert.deepEqual(body.id, 'a');
      assert.equal(body.result.content[0].text, 'json please');
    });

    it('2025-06-18: a request with progress streams SSE with event ids, ending with the answer', async () => {
      const res = await fetch(`${base}/mcp`, {
        method: 'POST',
        headers: sessionHeaders(session0618, '2025-06-18'),
        body: JSON.stringify(call(9, 'long_task', { duration: 0.2, steps: 2 }, { progressToken: 'p' })),
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
      const { events, ended } = await readSse(res);
      assert.ok(ended);
      const messages = messagesOf(events);
      const progress = messages.filter((m) => m.method === 'notifications/progress');
      assert.deepEqual(
        progress.map((m) => m.params.progress),
        [1, 2],
      );
      assert.equal(messages.at(-1).id, 9);
      assert.equal(messages.at(-1).result.content[0].text, 'Long task finished: 2 steps in 0.2 s');
      for (const e of events) assert.match(e.id!, /^\d+_\d+$/);
    });

    it('2025-11-25: SSE at once, priming event (id, empty data) and retry before the answer', async () => {
      const res = await fetch(`${base}/mcp`, {
        method: 'POST',
        headers: sessionHeaders(session1125, '2025-11-25'),
        body: JSON.stringify(call(3, 'echo', { text: 'sse' })),
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
      const { events, retry } = await readSse(res);
      assert.equal(retry, 1000);
      assert.equal(events[0].data, '', 'priming event first');
      assert.match(events[0].id!, /^\d+_\d+$/);
      const [stream] = events[0].id!.split('_');
      const answer = messagesOf(events);
      assert.equal(answer.length, 1);
      assert.equal(answer[0].result.content[0].text, 'sse');
      assert.equal(events[1].id!.split('_')[0], stream, 'the answer carries the same stream');
    });

    it('2025-03-26: a batch is accepted and answered with a JSON array', async () => {
      const id = await openSession(base, '2025-03-26');
      const res = await raw(base, {
        headers: sessionHeaders(id, undefined),
        body: JSON.stringify([
          call(1, 'echo', { text: 'one' }),
          { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
          call(2, 'echo', { text: 'two' }),
        ]),
      });
      assert.equal(res.status, 200, res.text);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.ok(Array.isArray(res.json));
      const byId = new Map(res.json.map((m: any) => [m.id, m.result.content[0].text]));
      assert.deepEqual([...byId.entries()].sort(), [
        [1, 'one'],
        [2, 'two'],
      ]);
    });

    it('2025-03-26: a batch of notifications only is 202', async () => {
      const id = await openSession(base, '2025-03-26');
      const res = await raw(base, {
        headers: sessionHeaders(id, '2025-03-26'),
        body: JSON.stringify([{ jsonrpc: '2.0', method: 'notifications/roots/list_changed' }]),
      });
      assert.equal(res.status, 202);
      assert.equal(res.text, '');
    });
  });

  describe('with the official SDK client', () => {
    it('initialize → tools/list → tools/call, progress and sampling, then terminateSession', async () => {
      const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`));
      const client = new Client({ name: 'sdk-test', version: '1.0.0' }, { capabilities: { sampling: {} } });
      client.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
        role: 'assistant',
        model: 'test-model',
        content: {
          type: 'text',
          text: `you asked: ${(req.params.messages[0].content as { text: string }).text}`,
        },
      }));
      await client.connect(transport);
      try {
        assert.match(transport.sessionId!, /^[\x21-\x7e]{22,}$/);
        assert.equal(client.getServerVersion()?.name, 'mcp-gateway-demo');
        const tools = await client.listTools();
        const names = tools.tools.map((t) => t.name).sort();
        for (const n of ['ask_llm', 'current_time', 'echo', 'long_task']) assert.ok(names.includes(n), n);

        const echo = await client.callTool({ name: 'echo', arguments: { text: 'hello gateway' } });
        assert.deepEqual(echo.content, [{ type: 'text', text: 'hello gateway' }]);

        const seen: number[] = [];
        const long = await client.callTool(
          { name: 'long_task', arguments: { duration: 0.3, steps: 3 } },
          undefined,
          {
            onprogress: (p) => seen.push(p.progress),
          },
        );
        assert.deepEqual(seen, [1, 2, 3]);
        assert.equal(
          (long.content as Array<{ text: string }>)[0].text,
          'Long task finished: 3 steps in 0.3 s',
        );

        const asked = await client.callTool({ name: 'ask_llm', arguments: { question: 'what is MCP?' } });
        assert.equal(
          (asked.content as Array<{ text: string }>)[0].text,
          'test-model: you asked: what is MCP?',
        );

        const sessionId = transport.sessionId!;
        await transport.terminateSession();
        const after = await raw(base, {
          headers: sessionHeaders(sessionId, '2025-11-25'),
          body: JSON.stringify(call(1, 'echo', { text: 'x' })),
        });
        assert.equal(after.status, 404);
      } finally {
        await client.close();
      }
    });
  });
});
