import {
  Inject,
  Injectable,
  Logger,
  Module,
  Optional,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { GatewayMetrics } from '../../telemetry/gateway-metrics.service';
import { AdmissionService, PolicyModule } from '../../policy/policy.module';
import { MessagePolicyModule } from '../../policy/message-policy.module';
import { MessagePolicy } from '../../policy/message-policy';
import { SessionModule, SessionService } from '../../session/session.module';
import { ErrorCode } from '../../../libs/protocol/src';
import { ErrorBoundary } from '../error-boundary';
import { mcpErrorHandler } from '../http/fastify-errors';
import { sendJsonRpcError } from '../http/http-reply';
import { KeepAliveTicker } from '../http/keep-alive-ticker';
import {
  hasRequestBody,
  parseQuery,
  rawRoutesOf,
  readRawBody,
  ROUTED_METHODS,
  type RawBodyTarget,
  type RawRoute,
} from '../http/raw-routes';
import { RequestGuard } from '../http/request-guard';
import { LegacySseHandler, MESSAGES_PATH, type QueryParams } from './legacy-sse.handler';

type ServiceParams = { service?: string };

const RAW_METHODS = new Set(ROUTED_METHODS);

/**
 * Serves GET /sse[/:service] and POST /messages straight from the Node HTTP server (raw routes, see
 * raw-routes.ts), answering as the Fastify routes would; the same paths are also Fastify routes
 * (hijacked, no Nest pipeline), which serve them when the server was not built by bootstrap's
 * factory, and whatever the raw routes leave (unusual paths, shutdown). A method a route does not
 * serve gets 405 with Allow on both, HEAD included.
 */
@Injectable()
export class LegacySseRoutes implements OnModuleInit, OnApplicationShutdown, RawRoute {
  private readonly keepAlive: KeepAliveTicker;
  readonly handler: LegacySseHandler;
  /** Error boundary of GET /sse (RawRoute, the Fastify routes, the handler's continuations). */
  readonly boundary: ErrorBoundary;
  /** Error boundary of POST /messages. */
  readonly messagesBoundary: ErrorBoundary;
  /** Set when the HTTP server starts closing: requests then go to Fastify, which answers 503. */
  closing = false;

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly adapterHost: HttpAdapterHost,
    private readonly metrics: GatewayMetrics,
    sessions: SessionService,
    admission: AdmissionService,
    @Optional() policy?: MessagePolicy,
  ) {
    this.keepAlive = new KeepAliveTicker(config.sse.keepAliveMs);
    // The cap of S3 allocate_connections(sse) counts open SSE streams: the ticker holds each of them.
    sessions.transportGuard?.measure('sse', () => this.keepAlive.size);
    const log = new Logger('LegacySse');
    this.boundary = new ErrorBoundary('sse', metrics, log, sessions.transportGuard);
    this.messagesBoundary = new ErrorBoundary('messages', metrics, log, sessions.transportGuard);
    this.handler = new LegacySseHandler(
      config,
      sessions,
      sessions,
      new RequestGuard(config),
      this.keepAlive,
      metrics,
      this.boundary,
      admission,
      policy,
    );
  }

  onModuleInit(): void {
    const fastify: FastifyInstance = this.adapterHost.httpAdapter.getInstance();
    const errorHandler = mcpErrorHandler(this.metrics, this.config.maxBodyBytes);
    const open = (req: FastifyRequest, reply: FastifyReply) => {
      reply.hijack();
      try {
        if (req.raw.method !== 'GET') this.handler.methodNotAllowed(req.raw, reply.raw, 'GET');
        else {
          this.handler.openStream(
            req.raw,
            reply.raw,
            (req.params as ServiceParams).service,
            req.query as QueryParams,
          );
        }
      } catch (err) {
        this.boundary.http(reply.raw, err);
      }
    };
    // Every routed method, HEAD included (not Fastify's HEAD-as-GET): the handler answers 405.
    for (const url of ['/sse', '/sse/:service']) {
      fastify.route({ method: ROUTED_METHODS, url, exposeHeadRoute: false, errorHandler, handler: open });
    }
    fastify.route({
      method: ROUTED_METHODS,
      url: MESSAGES_PATH,
      exposeHeadRoute: false,
      errorHandler,
      handler: (req: FastifyRequest, reply: FastifyReply) => {
        reply.hijack();
        try {
          if (req.raw.method !== 'POST') this.handler.methodNotAllowed(req.raw, reply.raw, 'POST');
          else this.handler.postMessage(req.raw, reply.raw, req.body, req.query as QueryParams);
        } catch (err) {
          this.messagesBoundary.http(reply.raw, err);
        }
      },
    });
    const raw = rawRoutesOf(this.adapterHost.httpAdapter.getHttpServer() as HttpServer | undefined);
    if (raw) {
      raw.add('/sse', this, true);
      raw.add(MESSAGES_PATH, new MessagesRoute(this, this.config.maxBodyBytes), false);
      fastify.addHook('preClose', (done) => {
        this.closing = true;
        done();
      });
    }
  }

  /** GET /sse and /sse/<service> (RawRoute); the other routed methods get 405. */
  serve(req: IncomingMessage, res: ServerResponse, service: string | undefined, query: string): boolean {
    if (this.closing) return false;
    if (req.method === 'GET') this.handler.openStream(req, res, service, parseQuery(query));
    else if (RAW_METHODS.has(req.method!)) this.handler.methodNotAllowed(req, res, 'GET');
    else return false;
    return true;
  }

  /** A POST /messages body that went over the limit: what the Fastify route's error handler answers. */
  bodyTooLarge(res: ServerResponse): void {
    this.metrics.error('body_too_large');
    sendJsonRpcError(
      res,
      413,
      ErrorCode.InvalidRequest,
      `Request body exceeds ${this.config.maxBodyBytes} bytes`,
    );
  }

  onApplicationShutdown(): void {
    this.keepAlive.stop();
  }
}

/** POST /messages as a raw route: the body is read here (bounded), then handed to the handler. */
class MessagesRoute implements RawRoute, RawBodyTarget {
  readonly boundary: ErrorBoundary;

  constructor(
    private readonly routes: LegacySseRoutes,
    readonly maxBodyBytes: number,
  ) {
    this.boundary = routes.messagesBoundary;
  }

  serve(req: IncomingMessage, res: ServerResponse, _service: string | undefined, query: string): boolean {
    if (this.routes.closing) return false;
    if (req.method !== 'POST') {
      if (!RAW_METHODS.has(req.method!)) return false;
      // Answered without reading a body it may carry (Node discards what is left of it).
      this.routes.handler.methodNotAllowed(req, res, 'POST');
      return true;
    }
    if (hasRequestBody(req)) readRawBody(this, req, res, undefined, query);
    else this.routes.handler.postMessage(req, res, undefined, parseQuery(query));
    return true;
  }

  bodyRead(
    req: IncomingMessage,
    res: ServerResponse,
    _service: string | undefined,
    query: string,
    body: Buffer,
  ): void {
    this.routes.handler.postMessage(req, res, body, parseQuery(query));
  }

  bodyTooLarge(_req: IncomingMessage, res: ServerResponse): void {
    this.routes.bodyTooLarge(res);
  }
}

/** The legacy HTTP+SSE client transport (2024-11-05): GET /sse[/:service] and POST /messages. */
@Module({
  imports: [SessionModule, PolicyModule, MessagePolicyModule],
  providers: [LegacySseRoutes],
})
export class SseTransportModule {}
