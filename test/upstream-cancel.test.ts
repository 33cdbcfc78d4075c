/**
 * A request the client cancels, or the gateway gives up on (REQUEST_TIMEOUT_MS), must not keep
 * its Streamable HTTP exchange with the upstream open: the gateway aborts that POST, and the
 * upstream server sees the request's connection close.
 */
import assert from 'node:assert/strict';

import { createServer, type IncomingMessage, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { connectClient } from './helpers/clients';
import { SdkHttpSessions } from './helpers/sdk-http-sessions';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { waitUntil } from './helpers/upstream-test-kit';

/** Per `tag` argument of the `hold` tool: whether its POST is open, and whether it was closed. */
const posts = new Map<string, 'open' | 'closed'>();

/** A tool that answers only after 20 s: longer than any bound of these tests. */
function holdServer(): McpServer {
  const server = new McpServer({ name: 'hold', version: '1.0.0' });
  server.registerTool('hold', { inputSchema: { tag: z.string() } }, async (_args, extra) => {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 20_000);
      extra.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
    });
    return { content: [{ type: 'text', text: 'held' }] };
  });
  return server;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

/** An SDK Streamable HTTP server (stateful, SSE answers) that watches each tools/call POST. */
async function startHoldUpstream(): Promise<{ url: string; server: Server }> {
  const sessions = new SdkHttpSessions(holdServer);
  const server = createServer((req, res) => {
    void (async () => {
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      const tag = (body as { method?: string; params?: { arguments?: { tag?: string } } } | undefined)?.params
        ?.arguments?.tag;
      if ((body as { method?: string } | undefined)?.method === 'tools/call' && tag !== undefined) {
        posts.set(tag, 'open');
        res.on('close', () => posts.set(tag, 'closed'));
      }
      await sessions.handle(req, res, body);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/mcp`, server };
}

describe('abandoned requests over a Streamable HTTP upstream', () => {
  let upstream: { url: string; server: Server };
  let gw: RunningGateway;

  before(async () => {
    upstream = await startHoldUpstream();
    gw = await startGateway(
      { services: { hold: { replicas: [{ transport: 'streamable-http', url: upstream.url }] } } },
      { REQUEST_TIMEOUT_MS: '1500', SESSION_SWEEP_INTERVAL_MS: '100' },
    );
  });

  after(async () => {
    await gw?.close();
    upstream?.server.closeAllConnections();
    await new Promise((resolve) => upstream?.server.close(resolve));
  });

  test('a call the client cancels closes its upstream POST', async () => {
    const { client } = await connectClient(gw.url, 'streamable', 'hold');
    try {
      const abort = new AbortController();
      const call = client.callTool({ name: 'hold', arguments: { tag: 'cancelled' } }, undefined, {
        signal: abort.signal,
      });
      await waitUntil(() => posts.get('cancelled') === 'open', 5000, 'the upstream POST to open');
      abort.abort('user gave up');
      await assert.rejects(call);
      await waitUntil(() => posts.get('cancelled') === 'closed', 5000, 'the upstream POST to close');

      // The session goes on: the next call on it is answered.
      const listed = await client.listTools();
      assert.deepEqual(
        listed.tools.map((t) => t.name),
        ['hold'],
      );
    } finally {
      await client.close();
    }
  });

  test('a call the gateway times out closes its upstream POST', async () => {
    const { client } = await connectClient(gw.url, 'streamable', 'hold');
    try {
      const call = client.callTool({ name: 'hold', arguments: { tag: 'timed-out' } }, undefined, {
        timeout: 15_000,
      });
      await waitUntil(() => posts.get('timed-out') === 'open', 5000, 'the upstream POST to open');
      await assert.rejects(call, /timed out|timeout/i);
      await waitUntil(() => posts.get('timed-out') === 'closed', 5000, 'the upstream POST to close');
    } finally {
      await client.close();
    }
  });
});
