import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode } from '../../../libs/protocol/src';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { GatewayMetrics } from '../../observability/gateway-metrics.service';
import { Router } from '../../routing/router.service';
import { SessionService } from '../../session/session.module';
import { sendJsonRpcError } from '../http/http-reply';
import { KeepAliveTicker } from '../http/keep-alive-ticker';
import { StreamableHttpHandler } from './streamable-http.handler';

/** Every method is routed to the handler, which answers 405 (with Allow) for the ones MCP does not use. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

/**
 * Registers /mcp and /mcp/:service as raw Fastify routes: no Nest guard, pipe or interceptor
 * runs per request. Each handler hijacks the reply and writes to the Node response itself.
 */
@Injectable()
export class StreamableHttpRoutes implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly log = new Logger('StreamableHttp');
  readonly keepAlive: KeepAliveTicker;
  readonly handler: StreamableHttpHandler;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly sessions: SessionService,
    router: Router,
    metrics: GatewayMetrics,
  ) {
    this.keepAlive = new KeepAliveTicker(config.sse.keepAliveMs);
    this.handler = new StreamableHttpHandler({
      config,
      sessions,
      hasService: (name) => router.hasService(name),
      metrics,
      keepAlive: this.keepAlive,
      logError: (message, err) => this.log.error({ err }, message),
    });
  }

  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    const handler = this.handler;
    const serve = (request: FastifyRequest, reply: FastifyReply): void => {
      reply.hijack();
      const service = (request.params as { service?: string } | undefined)?.service;
      handler.handle(
        request.raw.method ?? 'GET',
        service,
        request.raw.headers,
        request.body as Buffer | undefined,
        reply.raw,
      );
    };
    // Fastify refuses the body before the handler runs (too large, aborted): answer with a JSON-RPC error.
    const errorHandler = (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
      reply.hijack();
      const res = reply.raw;
      const service = (request.params as { service?: string } | undefined)?.service;
      if (handler.admit(request.raw.headers, service, res) === undefined) return;
      if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        handler.deps.metrics.error('body_too_large');
        sendJsonRpcError(
          res,
          413,
          ErrorCode.InvalidRequest,
          `Payload Too Large: the limit is ${this.config.maxBodyBytes} bytes`,
        );
        return;
      }
      const status = typeof error.statusCode === 'number' && error.statusCode >= 400 ? error.statusCode : 400;
      handler.deps.metrics.error(status >= 500 ? 'internal_error' : 'bad_request');
      sendJsonRpcError(
        res,
        status,
        status >= 500 ? ErrorCode.InternalError : ErrorCode.InvalidRequest,
        error.message,
      );
    };
    for (const url of ['/mcp', '/mcp/:service']) {
      fastify.route({
        method: METHODS,
        url,
        bodyLimit: this.config.maxBodyBytes,
        exposeHeadRoute: false,
        handler: serve,
        errorHandler,
      });
    }
  }

  /**
   * Ends the responses this transport still holds before the HTTP server closes (it would wait
   * for them): open streams end with their `retry:` already sent, so clients come back to resume.
   */
  async beforeApplicationShutdown(): Promise<void> {
    // Let requests in flight finish first; what is still open afterwards is ended here.
    await this.sessions.drain();
    for (const res of [...this.handler.live]) {
      if (!res.headersSent) sendJsonRpcError(res, 503, ErrorCode.InternalError, 'Gateway shutting down');
      else res.end();
    }
    this.handler.live.clear();
  }

  onApplicationShutdown(): void {
    this.keepAlive.stop();
  }
}
