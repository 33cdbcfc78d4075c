import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationShutdown,
  type OnModuleInit,
  Optional,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode } from '../../../libs/protocol/src/jsonrpc';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { GatewayMetrics } from '../../telemetry/gateway-metrics.service';
import { AdmissionService } from '../../policy/policy.module';
import { MessagePolicy } from '../../policy/message-policy';
import { SessionService } from '../../session/session.module';
import { sendJsonRpcError, sendRefusal } from '../http/http-reply';
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
import { ErrorBoundary } from '../error-boundary';
import { StreamableHttpHandler } from './streamable-http.handler';

/** Every method is routed to the handler, which answers 405 (with Allow) for the ones MCP does not use. */
const RAW_METHODS = new Set(ROUTED_METHODS);

/**
 * Serves /mcp and /mcp/:service straight from the Node HTTP server (a raw route, see raw-routes.ts): no Nest
 * middleware, guard, pipe or interceptor and no Fastify routing, hooks or body parser run per
 * request — at a few thousand requests a second they cost more CPU than forwarding the message.
 * The same paths are also registered as Fastify routes (hijacked, writing to the Node response
 * themselves), which serve them when the server was not built by bootstrap's factory.
 */
@Injectable()
export class StreamableHttpRoutes
  implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown, RawRoute, RawBodyTarget
{
  private readonly log = new Logger('StreamableHttp');
  readonly keepAlive: KeepAliveTicker;
  readonly handler: StreamableHttpHandler;
  /** The error boundary of /mcp (RawRoute, RawBodyTarget, the Fastify routes and the handler's continuations). */
  readonly boundary: ErrorBoundary;
  /** Set when the HTTP server starts closing: requests that still arrive get 503, as Fastify answers. */
  private closing = false;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly sessions: SessionService,
    metrics: GatewayMetrics,
    admission: AdmissionService,
    @Optional() policy?: MessagePolicy,
  ) {
    this.keepAlive = new KeepAliveTicker(config.sse.keepAliveMs);
    this.boundary = new ErrorBoundary('mcp', metrics, this.log, sessions.transportGuard);
    this.handler = new StreamableHttpHandler({
      config,
      sessions,
      hasService: (name) => sessions.hasService(name),
      metrics,
      keepAlive: this.keepAlive,
      boundary: this.boundary,
      admission,
      policy,
    });
  }

  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    const handler = this.handler;
    const serve = (request: FastifyRequest, reply: FastifyReply): void => {
      reply.hijack();
      const service = (request.params as { service?: string } | undefined)?.service;
      try {
        handler.handle(
          request.raw.method ?? 'GET',
          service,
          request.raw.headers,
          request.body as Buffer | undefined,
          reply.raw,
          request.query as Record<string, unknown> | undefined,
        );
      } catch (err) {
        this.boundary.http(reply.raw, err);
      }
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
    const raw = rawRoutesOf(this.adapterHost.httpAdapter.getHttpServer() as HttpServer | undefined);
    if (raw) {
      raw.add('/mcp', this, true);
      fastify.addHook('preClose', (done) => {
        this.closing = true;
        done();
      });
    }
    for (const url of ['/mcp', '/mcp/:service']) {
      fastify.route({
        method: ROUTED_METHODS,
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
    this.handler.priming.stop();
    this.handler.sessionless?.stop();
  }

  /** A request on /mcp or /mcp/<service> (RawRoute), answered as the Fastify routes would. */
  serve(req: IncomingMessage, res: ServerResponse, service: string | undefined, query: string): boolean {
    const method = req.method ?? 'GET';
    if (!RAW_METHODS.has(method)) return false;
    if (this.closing) {
      res.setHeader('connection', 'close');
      sendJsonRpcError(res, 503, ErrorCode.InternalError, 'Gateway shutting down');
      return true;
    }
    if (!hasRequestBody(req) || method === 'GET' || method === 'HEAD') {
      this.handler.handle(method, service, req.headers, undefined, res, queryOf(query));
      return true;
    }
    const admission = this.handler.deps.admission;
    const request = {
      transport: 'streamable' as const,
      headers: req.headers,
      socket: req.socket,
      path: service === undefined ? '/mcp' : `/mcp/${service}`,
    };
    if (admission !== undefined && admission.lacksCredential(request)) {
      // No credential at all: refused before the body is read, so an anonymous client cannot make
      // the gateway buffer MAX_BODY_BYTES. The Origin/Host check still answers first.
      if (this.handler.admit(req.headers, service, res) !== undefined) {
        sendRefusal(res, admission.refuseAnonymous(request));
      }
      return true;
    }
    readRawBody(this, req, res, service, query);
    return true;
  }

  /** A request body was read completely (RawBodyTarget). */
  bodyRead(
    req: IncomingMessage,
    res: ServerResponse,
    service: string | undefined,
    query: string,
    body: Buffer,
  ): void {
    this.handler.handle(req.method ?? 'POST', service, req.headers, body, res, queryOf(query));
  }

  /** The body went over maxBodyBytes: 413 with a JSON-RPC error, as the Fastify route's error handler says. */
  bodyTooLarge(req: IncomingMessage, res: ServerResponse, service: string | undefined): void {
    const handler = this.handler;
    if (handler.admit(req.headers, service, res) === undefined) return;
    handler.deps.metrics.error('body_too_large');
    sendJsonRpcError(
      res,
      413,
      ErrorCode.InvalidRequest,
      `Payload Too Large: the limit is ${this.config.maxBodyBytes} bytes`,
    );
  }

  get maxBodyBytes(): number {
    return this.config.maxBodyBytes;
  }
}

/** Most requests have no query string: parse only when there is one. */
function queryOf(query: string): Record<string, unknown> | undefined {
  return query === '' ? undefined : parseQuery(query);
}
