import {
  Inject,
  Injectable,
  Logger,
  Module,
  type BeforeApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Server as HttpServer } from 'node:http';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { GatewayMetrics } from '../../observability/gateway-metrics.service';
import { Router } from '../../routing/router.service';
import { SessionService } from '../../session/session.module';
import { RequestGuard } from '../http/request-guard';
import { WsServer, type WsSettings } from './ws-server';

/** Defaults used until (or unless) the configuration names a value. */
const DEFAULT_HEARTBEAT_MS = 30_000;
const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
const DEFAULT_COMPRESSION_THRESHOLD = 1024;
/** Shutdown waits at most this long for clients to answer the close frame. */
const MAX_CLOSE_WAIT_MS = 2000;

/** The optional config fields this transport reads (see the `ws` block of GatewayConfig). */
interface WsConfigFields {
  ws?: Partial<{
    heartbeatIntervalMs: number;
    maxFrameBytes: number;
    compression: boolean;
    compressionThresholdBytes: number;
  }>;
  channelHighWaterMarkBytes?: number;
}

/** Reads the WebSocket settings, with defaults for fields a configuration may not have. */
export function wsSettingsFrom(config: GatewayConfig): WsSettings {
  const extra = config as GatewayConfig & WsConfigFields;
  const ws = extra.ws ?? {};
  return {
    maxPayload: ws.maxFrameBytes ?? config.maxBodyBytes,
    heartbeatIntervalMs: ws.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS,
    compression: ws.compression ?? false,
    compressionThreshold: ws.compressionThresholdBytes ?? DEFAULT_COMPRESSION_THRESHOLD,
    highWaterMark: extra.channelHighWaterMarkBytes ?? DEFAULT_HIGH_WATER_MARK,
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
    router: Router,
  ) {
    this.server = new WsServer(
      wsSettingsFrom(config),
      sessions,
      router,
      new RequestGuard(config),
      metrics,
      new Logger('WsTransport'),
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
