/**
 * The undici pool per HTTP upstream origin, counted at the upstream (a node:http server running
 * the SDK's Streamable HTTP server transport, counting its sockets): a pooled service sizes the
 * origin's pool from its pool settings (max × (2 + maxConcurrentPerConnection) sockets at most,
 * whatever the client load), and idle sockets are closed by the gateway after
 * UPSTREAM_HTTP_KEEPALIVE_MS, before the upstream's own keep-alive would close them — so a
 * socket the upstream is closing is never reused.
 */
import assert from 'node:assert/strict';

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { PoolManager } from '../src/pool/pool-manager.service';
import { connectClient } from './helpers/clients';
import { SdkHttpSessions } from './helpers/sdk-http-sessions';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { waitUntil } from './helpers/upstream-test-kit';

/** Sockets at the upstream: how many were accepted, are open now, and who ended the closed ones. */
const sockets = { accepted: 0, open: 0, peak: 0, closedByPeer: 0, closedByServerKeepAlive: 0 };
/** When each upstream socket's last response finished. */
const idleSince = new WeakMap<Socket, number>();

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function toolServer(): McpServer {
  const server = new McpServer({ name: 'socket-counter', version: '1.0.0' });
  server.registerTool(
    'slow',
    { description: 'Answers after `ms`.', inputSchema: { ms: z.number(), tag: z.string() } },
    async ({ ms, tag }) => {
      await new Promise((r) => setTimeout(r, ms));
      return { content: [{ type: 'text', text: tag }] };
    },
  );
  return server;
}

/** Its keep-alive (1 s) is longer than the gateway's (300 ms here) and shorter than the default 4 s. */
const UPSTREAM_KEEPALIVE_MS = 1000;

async function startCountingUpstream(): Promise<{ url: string; server: Server }> {
  const sessions = new SdkHttpSessions(toolServer);
  const server = createServer((req, res) => {
    res.on('finish', () => idleSince.set(req.socket, Date.now()));
    // Like many servers behind proxies, it does not announce its keep-alive (no `Keep-Alive:
    // timeout=` header, which undici would honour): only the gateway's own setting protects it.
    (res as unknown as { _keepAliveTimeout: number })._keepAliveTimeout = 0;
    void (async () => {
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      await sessions.handle(req, res, body);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  server.keepAliveTimeout = UPSTREAM_KEEPALIVE_MS;
  server.on('connection', (socket: Socket) => {
    sockets.accepted++;
    sockets.open++;
    sockets.peak = Math.max(sockets.peak, sockets.open);
    let peerEnded = false;
    socket.on('end', () => (peerEnded = true));
    socket.on('close', () => {
      sockets.open--;
      if (peerEnded) sockets.closedByPeer++;
      // The upstream's keep-alive timer ended it: idle (its last response done) for that long.
      const idle = Date.now() - (idleSince.get(socket) ?? Date.now());
      if (!peerEnded && idle >= UPSTREAM_KEEPALIVE_MS - 100) sockets.closedByServerKeepAlive++;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/mcp`, server };
}

describe('undici pool per HTTP upstream origin (pooled service)', () => {
  let upstream: { url: string; server: Server };
  let gw: RunningGateway;
  const clients: Client[] = [];
  const POOL_MAX = 2;

  before(async () => {
    upstream = await startCountingUpstream();
    gw = await startGateway(
      {
        defaultService: 'tools',
        services: {
          tools: {
            mode: 'pooled',
            pool: { min: 0, max: POOL_MAX, maxWaitingClients: 1000, acquireTimeoutMs: 30_000 },
            replicas: [{ transport: 'streamable-http', url: upstream.url }],
          },
        },
      },
      { UPSTREAM_HTTP_KEEPALIVE_MS: '300' },
    );
  });

  after(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await gw?.close();
    upstream?.server.closeAllConnections();
    await new Promise((resolve) => upstream?.server.close(resolve));
  });

  test('24 concurrent calls from 8 sessions use at most max × 3 sockets; idle ones are closed by the gateway first', async () => {
    for (let i = 0; i < 8; i++) clients.push((await connectClient(gw.url, 'streamable')).client);
    const calls = clients.flatMap((c, i) =>
      [0, 1, 2].map((j) => c.callTool({ name: 'slow', arguments: { ms: 50, tag: `c${i}-${j}` } })),
    );
    const results = (await Promise.all(calls)) as Array<{ content: Array<{ text: string }> }>;
    results.forEach((r, k) => assert.equal(r.content[0].text, `c${Math.floor(k / 3)}-${k % 3}`));

    const pool = gw.gateway.app.get(PoolManager).poolStats()[0];
    assert.ok(pool.size >= 1 && pool.size <= POOL_MAX, JSON.stringify(pool));
    // One standalone GET, one POST and one spare per upstream session.
    assert.ok(sockets.peak <= POOL_MAX * 3, `at most ${POOL_MAX * 3} sockets at once, saw ${sockets.peak}`);
    assert.ok(sockets.accepted >= 1);

    // Idle past the gateway's keep-alive (300 ms) and the upstream's (1 s): the idle sockets are gone,
    // and every one was closed from the gateway's side; what stays open are the standalone GET streams.
    await new Promise((r) => setTimeout(r, UPSTREAM_KEEPALIVE_MS + 500));
    assert.equal(sockets.closedByServerKeepAlive, 0, 'no idle socket outlived the gateway keep-alive');
    assert.ok(sockets.closedByPeer >= 1, 'idle POST sockets were closed by the gateway');
    await waitUntil(
      () => sockets.open <= gw.gateway.app.get(PoolManager).poolStats()[0].size,
      5000,
      'only the standalone GET streams to stay open',
    );

    // And the next call after the idle time is served on a fresh socket.
    const accepted = sockets.accepted;
    const later = (await clients[0].callTool({ name: 'slow', arguments: { ms: 1, tag: 'later' } })) as {
      content: Array<{ text: string }>;
    };
    assert.equal(later.content[0].text, 'later');
    await waitUntil(() => sockets.accepted > accepted, 2000, 'a new socket for the POST');
  });
});
