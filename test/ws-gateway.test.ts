/**
 * The WebSocket transport as a Nest gateway: its `ws` server comes from the platform adapter set in
 * bootstrap.ts, admission keeps the HTTP server's 'upgrade' event (refusals before the 101) and no
 * Nest machinery runs per connection or per message.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import type { GatewayConfigOverrides } from '../src/config/gateway-config';
import { WsGateway } from '../src/transports/ws/ws.gateway';
import { startGateway, type RunningGateway } from './helpers/gateway';

const MAX_FRAME = 32 * 1024;

function wsUrl(base: string, path: string): string {
  return base.replace(/^http/, 'ws') + path;
}

/** Opens a socket and resolves with its first frame, or with the HTTP status of a refused upgrade. */
function firstReply(url: string): Promise<{ frame?: any; status?: number; ws: WebSocket }> {
  const ws = new WebSocket(url, 'mcp');
  return new Promise((resolve, reject) => {
    ws.once('message', (data) => resolve({ frame: JSON.parse(data.toString()), ws }));
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      res.resume();
      resolve({ status: res.statusCode, ws });
    });
    ws.once('error', reject);
  });
}

describe('WebSocket gateway on the ws platform adapter', () => {
  let gw: RunningGateway;
  let gateway: WsGateway;

  before(async () => {
    gw = await startGateway({
      maxBodyBytes: MAX_FRAME,
      ws: { maxFrameBytes: MAX_FRAME },
    } as GatewayConfigOverrides);
    gateway = gw.gateway.app.get(WsGateway);
  });
  after(() => gw.close());

  test("the gateway's ws server is the adapter's, in noServer mode with the configured limits", () => {
    const server = gateway.server;
    assert.ok(server instanceof WebSocketServer);
    assert.equal(server.options.noServer, true);
    assert.equal(server.options.maxPayload, MAX_FRAME);
    assert.equal(server.options.clientTracking, false);
    // One 'upgrade' listener: the gateway's admission; the adapter's own path router is not installed.
    assert.equal((gw.gateway.app.getHttpServer() as HttpServer).listenerCount('upgrade'), 1);
  });

  test('connections reach the frame path without a connection event (no Nest dispatch)', async () => {
    let emitted = 0;
    const count = (): void => void emitted++;
    gateway.server!.on('connection', count);
    try {
      const { frame, ws } = await firstReply(wsUrl(gw.url, '/ws'));
      assert.equal(frame?.method, 'notifications/gateway/session');
      assert.equal(gateway.connections, 1);
      const closed = new Promise((resolve) => ws.once('close', resolve));
      ws.close(1000);
      await closed;
      assert.equal(emitted, 0);
    } finally {
      gateway.server!.off('connection', count);
    }
  });

  test('refusals are still HTTP statuses before the 101', async () => {
    assert.equal((await firstReply(wsUrl(gw.url, '/ws/no-such-service'))).status, 404);
    assert.equal((await firstReply(wsUrl(gw.url, '/elsewhere'))).status, 404);
  });
});
