import type { INestApplicationContext } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import { WebSocketServer, type ServerOptions } from 'ws';
import type { GatewayConfig } from '../../config/gateway-config';

/** What the `ws` server takes from the configuration (the rest is the gateway's, on its decorator). */
export type WsServerLimits = Pick<ServerOptions, 'maxPayload' | 'perMessageDeflate'>;

/** The `ws` server settings of the validated configuration. */
export function wsServerLimits(config: GatewayConfig): WsServerLimits {
  return {
    // Larger frames → close 1009: ws enforces it while reading.
    maxPayload: config.ws.maxFrameBytes,
    perMessageDeflate: config.ws.compression
      ? {
          threshold: config.ws.compressionThresholdBytes,
          // No context takeover: the zlib window is not kept between messages, per connection.
          serverNoContextTakeover: true,
          clientNoContextTakeover: true,
        }
      : false,
  };
}

/**
 * Nest's `ws` platform adapter, with one addition: a gateway that asks for `noServer: true` gets
 * a `ws` server in noServer mode and nothing else — no 'upgrade' listener of the adapter's own.
 *
 * WsAdapter, for a gateway on the application's port, puts its own 'upgrade' listener on the
 * HTTP server that matches the path exactly, calls `handleUpgrade` at once and destroys the socket
 * of any other path without a status line. The gateway cannot live with that listener: it routes
 * `/ws/<service>` and `/mcp/<service>`, refuses with an HTTP status before the 101 (flood caps,
 * Origin/Host, authentication, subprotocol) and serves both `/ws` and Upgrade on `/mcp` with one
 * server. So the gateway keeps admission on the server's 'upgrade' event (ws-upgrade.ts) and this
 * adapter only builds, holds and closes the `ws` server. See README "WebSocket".
 */
export class GatewayWsAdapter extends WsAdapter {
  constructor(
    /** The application (or its HTTP server), as for WsAdapter. */
    app: INestApplicationContext | object,
    private readonly limits: WsServerLimits,
  ) {
    super(app);
  }

  override create(port: number, options?: ServerOptions & { namespace?: string }): WebSocketServer {
    if (options?.noServer !== true) return super.create(port, options) as WebSocketServer;
    // Nest passes the gateway's decorator options; a path means nothing without a listener of ours.
    const { path: _path, namespace: _namespace, ...wsOptions } = options;
    // No bindErrorHandler(): it logs through 'connection' and server 'error', which a noServer
    // server whose handshakes complete through a callback never emits.
    return new WebSocketServer({ ...this.limits, ...wsOptions, noServer: true });
  }

  /**
   * The gateway has closed its connections by now (1001, then terminate after the grace period, in
   * its beforeApplicationShutdown): only the server is left. WsAdapter.close() would iterate
   * `server.clients`, which is undefined with `clientTracking: false`, and reject when the server
   * is already closed.
   */
  override async close(server: WebSocketServer): Promise<void> {
    if (server.options.noServer !== true) return super.close(server);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
