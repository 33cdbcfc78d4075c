import { Inject, Logger, Optional, type BeforeApplicationShutdown } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { WebSocketGateway, WebSocketServer, type OnGatewayInit } from '@nestjs/websockets';
import type { Server as HttpServer } from 'node:http';
import type { Server as WsLibServer, ServerOptions } from 'ws';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { GatewayMetrics } from '../../telemetry/gateway-metrics.service';
import { AdmissionService } from '../../policy/policy.module';
import { MessagePolicy } from '../../policy/message-policy';
import { SessionService } from '../../session/session.module';
import { RequestGuard } from '../http/request-guard';
import { GatewaySocket } from './ws-channel';
import { WsServer, type WsSettings } from './ws-server';
import { pickSubprotocol, WsUpgrade } from './ws-upgrade';

/** Shutdown waits at most this long for clients to answer the close frame. */
const MAX_CLOSE_WAIT_MS = 2000;

/** The frame path's settings, from the validated configuration. */
export function wsSettingsFrom(config: GatewayConfig): WsSettings {
  return {
    heartbeatIntervalMs: config.ws.heartbeatIntervalMs,
    highWaterMark: config.channelHighWaterMarkBytes,
    maxJsonDepth: config.maxJsonDepth,
  };
}

/**
 * The shape of the `ws` server the platform adapter builds for this gateway (the configured
 * limits come from the adapter, see ws.adapter.ts). noServer: upgrades reach it only through
 * WsUpgrade, after admission.
 */
const WS_SERVER_OPTIONS: ServerOptions<typeof GatewaySocket> = {
  noServer: true,
  // Our own Set of channels: ws's tracking adds a closure per connection.
  clientTracking: false,
  handleProtocols: pickSubprotocol,
  WebSocket: GatewaySocket,
};

/**
 * The WebSocket client transport (`/ws[/<service>]`, Upgrade on `/mcp[/<service>]`), as a Nest
 * gateway. Nest's platform adapter (GatewayWsAdapter, set in bootstrap.ts) owns the `ws` server
 * and hands it over in `afterInit`; the gateway then wires upgrade admission (WsUpgrade, on the
 * HTTP server's 'upgrade' event, refusals before the 101) to the frame path (WsServer).
 *
 * No @SubscribeMessage: Nest's per-message dispatch (an Observable, guards, pipes, interceptors
 * and a JSON.parse per frame, routing on an `event` field MCP does not have) never runs. Each
 * connection goes from the handshake callback straight to `WsServer.open`, and each frame from
 * `ws` to the session.
 */
@WebSocketGateway(WS_SERVER_OPTIONS)
export class WsGateway
  implements OnGatewayInit<WsLibServer<typeof GatewaySocket>>, BeforeApplicationShutdown
{
  readonly frames: WsServer;
  /** The `ws` server the platform adapter built for this gateway (set by Nest before `afterInit`). */
  @WebSocketServer() server: WsLibServer<typeof GatewaySocket> | undefined = undefined;
  private upgrades: WsUpgrade | undefined = undefined;
  private readonly log = new Logger('WsTransport');

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly adapterHost: HttpAdapterHost,
    private readonly metrics: GatewayMetrics,
    private readonly sessions: SessionService,
    private readonly admission: AdmissionService,
    @Optional() policy?: MessagePolicy,
  ) {
    this.frames = new WsServer(wsSettingsFrom(config), sessions, metrics, this.log, admission, policy);
  }

  /** Nest hands over the adapter's `ws` server when it connects the gateway (during app.init()). */
  afterInit(wss: WsLibServer<typeof GatewaySocket>): void {
    this.upgrades = new WsUpgrade(
      wss,
      this.frames,
      this.sessions,
      this.sessions,
      new RequestGuard(this.config),
      this.metrics,
      this.log,
      this.admission,
      this.config.auth.wsQueryToken,
    );
    this.upgrades.attach(this.adapterHost.httpAdapter.getHttpServer() as HttpServer);
    this.frames.start();
  }

  get connections(): number {
    return this.frames.connections;
  }

  /** Before Fastify closes the server: it would otherwise wait for every upgraded socket. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.sessions.drain();
    this.upgrades?.detach();
    await this.frames.shutdown(Math.min(this.config.shutdownGraceMs, MAX_CLOSE_WAIT_MS));
    // A handshake still waiting for authentication or S2 now gets 503 from ws.
    this.server?.close();
  }
}
