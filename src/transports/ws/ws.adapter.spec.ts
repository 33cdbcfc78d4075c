import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { describe, test } from 'node:test';
import { WsAdapter } from '@nestjs/platform-ws';
import { WebSocketServer } from 'ws';
import { GatewayWsAdapter } from './ws.adapter';

const LIMITS = { maxPayload: 4096, perMessageDeflate: false };

describe('GatewayWsAdapter', () => {
  test('a noServer gateway gets a noServer ws server with the limits, and no upgrade listener', () => {
    const http = createServer();
    const adapter = new GatewayWsAdapter(http, LIMITS);
    const wss = adapter.create(0, { noServer: true, clientTracking: false, path: '/ignored' });
    assert.ok(wss instanceof WebSocketServer);
    assert.equal(wss.options.noServer, true);
    assert.equal(wss.options.maxPayload, 4096);
    assert.equal(wss.options.clientTracking, false);
    assert.equal(wss.clients, undefined);
    // Admission owns 'upgrade' (ws-upgrade.ts): the adapter added no router of its own.
    assert.equal(http.listenerCount('upgrade'), 0);
  });

  test('without noServer it is the stock WsAdapter, which puts its path router on the server', () => {
    const http = createServer();
    const adapter = new GatewayWsAdapter(http, LIMITS);
    adapter.create(0, { path: '/ws' });
    assert.equal(http.listenerCount('upgrade'), 1);
  });

  test('close() settles for a server without client tracking, also when it is already closed', async () => {
    const adapter = new GatewayWsAdapter(createServer(), LIMITS);
    const open = adapter.create(0, { noServer: true, clientTracking: false });
    await assert.doesNotReject(adapter.close(open));
    // The gateway closes the server in its beforeApplicationShutdown, before Nest disposes the adapter.
    const closed = adapter.create(0, { noServer: true, clientTracking: false });
    closed.close();
    await assert.doesNotReject(adapter.close(closed));
    // What the stock close() does with the same server (iterates `server.clients`).
    const stock = new WsAdapter(createServer());
    await assert.rejects(
      stock.close(adapter.create(0, { noServer: true, clientTracking: false })),
      TypeError,
    );
  });
});
