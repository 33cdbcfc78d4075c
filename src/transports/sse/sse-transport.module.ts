import { Inject, Injectable, Module, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { GatewayMetrics } from '../../observability/gateway-metrics.service';
import { Router } from '../../routing/router.service';
import { SessionService } from '../../session/session.module';
import { mcpErrorHandler } from '../http/fastify-errors';
import { KeepAliveTicker } from '../http/keep-alive-ticker';
import { RequestGuard } from '../http/request-guard';
import { LegacySseHandler, MESSAGES_PATH, type QueryParams } from './legacy-sse.handler';

type ServiceParams = { service?: string };

/** Registers the legacy HTTP+SSE routes straight on Fastify: no Nest pipeline per request. */
@Injectable()
export class LegacySseRoutes implements OnModuleInit, OnApplicationShutdown {
  private readonly keepAlive: KeepAliveTicker;
  private readonly handler: LegacySseHandler;

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly adapterHost: HttpAdapterHost,
    private readonly metrics: GatewayMetrics,
    sessions: SessionService,
    router: Router,
  ) {
    this.keepAlive = new KeepAliveTicker(config.sse.keepAliveMs);
    this.handler = new LegacySseHandler(
      config,
      sessions,
      router,
      new RequestGuard(config),
      this.keepAlive,
      metrics,
    );
  }

  onModuleInit(): void {
    const fastify: FastifyInstance = this.adapterHost.httpAdapter.getInstance();
    const errorHandler = mcpErrorHandler(this.metrics, this.config.maxBodyBytes);
    const open = (req: FastifyRequest, reply: FastifyReply) => {
      reply.hijack();
      this.handler.openStream(
        req.raw,
        reply.raw,
        (req.params as ServiceParams).service,
        req.query as QueryParams,
      );
    };
    fastify.get('/sse', { errorHandler }, open);
    fastify.get('/sse/:service', { errorHandler }, open);
    fastify.post(MESSAGES_PATH, { errorHandler }, (req: FastifyRequest, reply: FastifyReply) => {
      reply.hijack();
      this.handler.postMessage(req.raw, reply.raw, req.body, req.query as QueryParams);
    });
  }

  onApplicationShutdown(): void {
    this.keepAlive.stop();
  }
}

@Module({ providers: [LegacySseRoutes] })
export class SseTransportModule {}
