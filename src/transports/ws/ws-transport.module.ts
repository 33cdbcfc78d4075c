import {
  Inject,
  Injectable,
  Logger,
  Module,
  Optional,
  type BeforeApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Server as HttpServer } from 'node:http';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { GatewayMetrics } from '../../observability/gateway-metrics.service';
import { AdmissionService } from '../../policy/policy.module';
import { MessagePolicy } from '../../policy/message-policy';
import { SessionService } from '../../session/session.module';
import { RequestGuard } from '../http/request-guard';
import { WsServer, type WsSettings } from './ws-server';

/** Defaults used until (or unless) the configuration names a value. */
/** Shutdown waits at most this long for clients to answer the close frame. */
const MAX_CLOSE_WAIT_MS = 2000;

/** The WebSocket settings, from the validated configuration. */
export function wsSettingsFrom(config: GatewayConfig): WsSettings {
  return {
    maxPayload: config.ws.maxFrameBytes,
    heartbeatIntervalMs: config.ws.heartbeatIntervalMs,
    compression: config.ws.compression,
    compressionThreshold: config.ws.compressionThresholdBytes,
    highWaterMark: config.channelHighWaterMarkBytes,
    maxJsonDepth: config.maxJsonDepth,
  };
}

/**
 * Serves WebSocket upgrades on `/ws[/<service>]` and `/mcp[/<service>]` from the HTTP
 * server Fastify listens on; plain HTTP on `/mcp` stays Fastify's (Node only hands
 * requests carrying `Upgrade` to 'upgrade' listeners).
 */
@Injectable()
export class WsTransportService implements OnModuleInit, BeforeApplicationShutdown {
  readonly server: WsServer;

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly adapterHost: HttpAdapterHost,
    metrics: GatewayMetrics,
    private readonly sessions: SessionService,
    admission: AdmissionService,
    @Optional() policy?: MessagePolicy,
  ) {
    this.server = new WsServer(
      wsSettingsFrom(config),
      sessions,
      sessions,
      new RequestGuard(config),
      metrics,
      new Logger('WsTransport'),
      admission,
      config.auth.wsQueryToken,
      policy,
    );
  }

  onModuleInit(): void {
    const httpServer = this.adapterHost.httpAdapter.getHttpServer() as HttpServer;
    this.server.attach(httpServer);
  }

  /** Before Fastify closes the server: it would otherwise wait for every upgraded socket. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.sessions.drain();
    await this.server.shutdown(Math.min(this.config.shutdownGraceMs, MAX_CLOSE_WAIT_MS));
  }
}

@Module({ providers: [WsTransportService], exports: [WsTransportService] })
export class WsTransportModule {}
