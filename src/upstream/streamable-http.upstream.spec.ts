import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Logger } from '@nestjs/common';
import { InMemoryEventStore } from '@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';
import { ErrorCode, type JsonRpcRequest } from '../../libs/protocol/src';
import type { ReplicaConfig } from '../config/gateway-config';
import {
  callTool,
  FAST_OPTIONS,
  freePort,
  handshake,
  RecordingSink,
  resultText,
  startEverythingHttp,
  waitUntil,
} from './testing/upstream-kit';
import { StreamableHttpUpstream } from './streamable-http.upstream';

Logger.overrideLogger(['error']);

function replica(url: string): ReplicaConfig {
  return { transport: 'streamable-http', url, headers: { 'x-test': 'yes' }, weight: 1, id: 'http-test' };
}

const opened: StreamableHttpUpstream[] = [];
function open(url: string, options = FAST_OPTIONS) {
  const up = new StreamableHttpUpstream(replica(url), options);
  const sink = new RecordingSink();
  up.sink = sink;
  opened.push(up);
  return { up, sink };
}

after(async () => {
  await Promise.all(opened.map((u) => u.close()));
});

describe('StreamableHttpUpstream with server-everything', () => {
  let server: Awaited<ReturnType<typeof startEverythingHttp>>;
  before(async () => {
    server = await startEverythingHttp('streamableHttp');
  });
  after(async () => {
    await server?.stop();
  });

  test('initialize, tools/list, echo raw, progress and sampling related to their request', async () => {
    const { up, sink } = open(`http://127.0.0.1:${server.port}/mcp`);
    await up.start();
    const init = await handshake(up, sink);
    assert.equal(
      (init.message as { result: { protocolVersion: string } }).result.protocolVersion,
      '2025-11-25',
    );
    assert.equal(init.related, 'init-1');

    up.send({ jsonrpc: '2.0', id: 2, method: 'tools/list' }, undefined);
    const list = await sink.response(2);
    const names = (list.message as { result: { tools: Array<{ name: string }> } }).result.tools.map(
      (t) => t.name,
    );
    assert.ok(names.includes('echo') && names.includes('trigger-sampling-request'));

    callTool(up, 'echo-1', 'echo', { message: 'über http' });
    const echo = await sink.response('echo-1');
    assert.equal(resultText(echo), 'Echo: über http');
    assert.ok(echo.raw);
    assert.deepEqual(JSON.parse(echo.raw!), echo.message);

    callTool(up, 3, 'trigger-long-running-operation', { duration: 0.4, steps: 2 }, { progressToken: 'tok' });
    const done = await sink.response(3);
    assert.match(resultText(done), /completed/);
    const progress = sink.notifications('notifications/progress');
    assert.equal(progress.length, 2);
    for (const p of progress) assert.equal(p.related, 3, 'progress came on the request’s own stream');

    callTool(up, 4, 'trigger-sampling-request', { prompt: 'hi', maxTokens: 5 });
    const sampling = await sink.request('sampling/createMessage');
    assert.equal(sampling.related, 4);
    up.send(
      {
        jsonrpc: '2.0',
        id: (sampling.message as JsonRpcRequest).id,
        result: { role: 'assistant', content: { type: 'text', text: 'answer-from-test' }, model: 'm' },
      },
      undefined,
    );
    const sampled = await sink.response(4);
    assert.match(resultText(sampled), /answer-from-test/);
  });
});

/** An SDK Streamable HTTP server we control: resumable (event store, retry), forgettable sessions. */
async function startSdkServer() {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const seen = { deletes: 0, resumes: [] as string[], headers: [] as Array<Record<string, unknown>> };
  const build = () => {
    const mcp = new McpServer({ name: 'sdk-test', version: '1.0.0' }, { capabilities: { logging: {} } });
    mcp.registerTool('echo', { inputSchema: { text: z.string() } }, ({ text }) => ({
      content: [{ type: 'text', text }],
    }));
    // Closes its response stream mid-way (2025-11-25 polling): the client must come back with
    // GET + Last-Event-ID after `retry` to get the rest.
    mcp.registerTool('polling', { inputSchema: {} }, async (_args, extra) => {
      const token = extra._meta?.progressToken ?? 'none';
      await extra.sendNotification({
        method: 'notifications/progress',
        params: { progressToken: token, progress: 1 },
      });
      extra.closeSSEStream?.();
      await new Promise((r) => setTimeout(r, 150));
      await extra.sendNotification({
        method: 'notifications/progress',
        params: { progressToken: token, progress: 2 },
      });
      return { content: [{ type: 'text', text: 'polled to the end' }] };
    });
    mcp.registerTool('notify', { inputSchema: {} }, async () => {
      setTimeout(() => mcp.sendToolListChanged(), 50);
      return { content: [{ type: 'text', text: 'will notify' }] };
    });
    return mcp;
  };
  const http: Server = createServer((req, res) => {
    void (async () => {
      seen.headers.push({ ...req.headers, method: req.method });
      const sid = req.headers['mcp-session-id'] as string | undefined;
      if (req.method === 'DELETE') seen.deletes++;
      if (req.headers['last-event-id']) seen.resumes.push(String(req.headers['last-event-id']));
      if (sid !== undefined) {
        const transport = transports.get(sid);
        if (!transport) {
          res.writeHead(404, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              jsonrpc: '2.0',
              id: null,
              error: { code: -32001, message: 'Session not found' },
            }),
          );
          return;
        }
        await transport.handleRequest(req, res);
        return;
      }
      if (req.method !== 'POST') {
        res.writeHead(400).end();
        return;
      }
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        eventStore: new InMemoryEventStore(),
        retryInterval: 30,
        onsessioninitialized: (id) => void transports.set(id, transport),
      });
      await build().connect(transport);
      await transport.handleRequest(req, res);
    })();
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(http.address() as { port: number }).port}/mcp`;
  const close = async () => {
    for (const t of transports.values()) await t.close().catch(() => undefined);
    http.closeAllConnections();
    await new Promise((r) => http.close(r));
  };
  return { url, transports, seen, close };
}

describe('StreamableHttpUpstream with an SDK server', () => {
  let srv: Awaited<ReturnType<typeof startSdkServer>>;
  before(async () => {
    srv = await startSdkServer();
  });
  after(async () => {
    await srv?.close();
  });

  test('sends session and protocol headers; a stream closed after priming is resumed with Last-Event-ID', async () => {
    const { up, sink } = open(srv.url);
    await up.start();
    await handshake(up, sink);
    callTool(up, 'poll', 'polling', {}, { progressToken: 'pt' });
    const done = await sink.response('poll');
    assert.equal(resultText(done), 'polled to the end');
    assert.equal(done.related, 'poll', 'the resumed stream still belongs to the request');
    const progress = sink.notifications('notifications/progress');
    assert.deepEqual(
      progress.map((p) => ((p.message as JsonRpcRequest).params as { progress: number }).progress),
      [1, 2],
    );
    for (const p of progress) assert.equal(p.related, 'poll');
    assert.ok(srv.seen.resumes.length >= 1, 'the client resumed with Last-Event-ID');
    const post = srv.seen.headers.find((h) => h.method === 'POST' && h['mcp-session-id']);
    assert.equal(post?.['mcp-protocol-version'], '2025-11-25');
    assert.equal(post?.['x-test'], 'yes');
    assert.match(String(post?.accept), /application\/json/);
    assert.match(String(post?.accept), /text\/event-stream/);
  });

  test('server-initiated messages arrive on the standalone GET stream', async () => {
    const { up, sink } = open(srv.url);
    await up.start();
    await handshake(up, sink);
    // Give the GET stream a moment to open before the server has something to say.
    await waitUntil(
      () => srv.seen.headers.some((h) => h.method === 'GET' && h['mcp-session-id'] !== undefined),
      3000,
      'GET stream',
    );
    callTool(up, 'n', 'notify', {});
    await sink.response('n');
    const changed = await sink.waitFor(
      (r) => (r.message as JsonRpcRequest).method === 'notifications/tools/list_changed',
      5000,
      'list_changed',
    );
    assert.equal(changed.related, undefined);
  });

  test('a 404 for the session replays the initialize handshake and re-sends the request', async () => {
    const { up, sink } = open(srv.url);
    await up.start();
    await handshake(up, sink);
    callTool(up, 'e1', 'echo', { text: 'before' });
    assert.equal(resultText(await sink.response('e1')), 'before');
    const before = srv.transports.size;
    srv.transports.clear(); // the upstream forgets every session, as after a restart
    callTool(up, 'e2', 'echo', { text: 'after expiry' });
    const again = await sink.response('e2');
    assert.equal(resultText(again), 'after expiry');
    assert.ok(before >= 1 && srv.transports.size === 1, 'a new upstream session was created');
    assert.equal(sink.received.filter((r) => (r.message as { id?: unknown }).id === 'init-1').length, 1);
    const deletesBefore = srv.seen.deletes;
    await up.close();
    assert.equal(srv.seen.deletes, deletesBefore + 1, 'close() ends the upstream session with DELETE');
  });
});

describe('StreamableHttpUpstream failures', () => {
  test('an unreachable URL: start() rejects, a request gets UpstreamUnavailable, nothing throws', async () => {
    const port = await freePort();
    const { up, sink } = open(`http://127.0.0.1:${port}/mcp`);
    await assert.rejects(up.start(), /Upstream unreachable/);
    assert.doesNotThrow(() => callTool(up, 1, 'echo', { message: 'x' }));
    const r = await sink.response(1);
    const error = (r.message as { error: { code: number; message: string } }).error;
    assert.equal(error.code, ErrorCode.UpstreamUnavailable);
    assert.match(error.message, /^Upstream unreachable: /);
    assert.equal(r.related, 1);
  });

  test('5xx answers a request with UpstreamUnavailable; a 4xx JSON-RPC error is passed on', async () => {
    const http = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (body.includes('"boom"')) {
          res.writeHead(503).end('down');
        } else {
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32600, message: 'bad thing' } }),
          );
        }
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    try {
      const { up, sink } = open(`http://127.0.0.1:${(http.address() as { port: number }).port}/mcp`);
      await up.start();
      up.send({ jsonrpc: '2.0', id: 'a', method: 'boom' }, undefined);
      up.send({ jsonrpc: '2.0', id: 'b', method: 'other' }, undefined);
      const a = (await sink.response('a')).message as { error: { code: number; message: string } };
      assert.equal(a.error.code, ErrorCode.UpstreamUnavailable);
      assert.equal(a.error.message, 'Upstream unreachable: HTTP 503');
      const b = (await sink.response('b')).message as {
        id: unknown;
        error: { code: number; message: string };
      };
      assert.equal(b.id, 'b', 'the error is re-addressed to the request');
      assert.equal(b.error.code, -32600);
      await up.close();
    } finally {
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    }
  });
});

describe('StreamableHttpUpstream cancellation', () => {
  test('a cancelled request aborts its POST (before or after the headers) and is never answered', async () => {
    const received = new Set<string>();
    const closed = new Set<string>();
    const cancels: unknown[] = [];
    const http = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (req.method !== 'POST') {
          res.writeHead(405).end();
          return;
        }
        const msg = JSON.parse(body) as { id?: string; method?: string; params?: { requestId?: unknown } };
        if (msg.method === 'notifications/cancelled') cancels.push(msg.params?.requestId);
        if (msg.id !== undefined) received.add(msg.id);
        if (msg.id === undefined) {
          res.writeHead(202).end();
        } else if (msg.id === 'silent') {
          // JSON-response mode: no headers until the (never finished) call is done.
          res.on('close', () => closed.add('silent'));
        } else if (msg.id === 'streaming') {
          // SSE answer: a priming event with an id, then nothing.
          res.on('close', () => closed.add('streaming'));
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write('id: 1\ndata: \n\n');
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: {} }));
        }
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    try {
      const { up, sink } = open(`http://127.0.0.1:${(http.address() as { port: number }).port}/mcp`);
      await up.start();
      up.send({ jsonrpc: '2.0', id: 'silent', method: 'tools/call' }, undefined);
      up.send({ jsonrpc: '2.0', id: 'streaming', method: 'tools/call' }, undefined);
      assert.equal(up.inFlightCount, 2);
      await waitUntil(() => received.size === 2, 5000, 'both calls to reach the upstream');
      for (const requestId of ['silent', 'streaming']) {
        up.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId } }, undefined);
      }
      assert.equal(up.inFlightCount, 0, 'cancelled requests are no longer awaited');
      await waitUntil(() => closed.size === 2, 5000, 'both POSTs to close at the upstream');
      await waitUntil(() => cancels.length === 2, 5000, 'both cancellations to reach the upstream');
      assert.deepEqual(cancels, ['silent', 'streaming']);
      up.send({ jsonrpc: '2.0', id: 'next', method: 'ping' }, undefined);
      await sink.response('next');
      const ids = sink.received.map((r) => (r.message as { id?: unknown }).id);
      assert.deepEqual(ids, ['next'], 'no error is invented for the cancelled requests');
      assert.equal(up.inFlightCount, 0);
      await up.close();
    } finally {
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    }
  });
});
