import 'reflect-metadata';
import http, { type Server as HttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Logger } from 'nestjs-pino';
import type { DestinationStream } from 'pino';
import { AppModule } from './app.module';
import { GatewayLogger } from './telemetry/logging/gateway-logger';
import type { GatewayConfig, GatewayConfigOverrides } from './config/gateway-config';
import { loadConfig } from './config/load-config';
import { registerRawBodyParser } from './transports/http/raw-body';
import { installRawRoutes } from './transports/http/raw-routes';
import { hostCheckWarning, installRequestGuard } from './transports/http/request-guard';
import { GatewayMetrics } from './telemetry/gateway-metrics.service';
import { readTlsFiles } from './transports/http/tls';
import { socketRefusal } from './policy/flood/flood-guard';
import { sendAdmissionRefused } from './transports/http/capacity-reply';
import { GatewayWsAdapter, wsServerLimits } from './transports/ws/ws.adapter';

export interface BootstrapOptions {
  /** Environment to read (defaults to process.env). */
  env?: Record<string, string | undefined>;
  /** Values that win over the environment (tests use these). */
  config?: GatewayConfigOverrides;
  /** Config file read when GATEWAY_CONFIG is unset and it exists (main.ts: ./gateway.yaml; tests: none). */
  defaultConfigFile?: string;
  /** Where log lines go instead of stdout (tests capture them). */
  logStream?: DestinationStream;
}

export interface Gateway {
  app: NestFastifyApplication;
  config: GatewayConfig;
}

/**
 * Builds the gateway application without listening. main.ts and the tests both start the
 * gateway through here, so what is tested is what runs.
 */
export async function bootstrap(options: BootstrapOptions = {}): Promise<Gateway> {
  const config = loadConfig(options.env ?? process.env, options.config, options.defaultConfigFile);
  const tls = config.tls ? readTlsFiles(config.tls) : undefined;
  const adapter = new FastifyAdapter({
    // One port for every transport: with a certificate it speaks HTTPS and WSS.
    ...(tls ? { https: tls } : {}),
    // Our own server, so the transports' hot paths can skip Fastify (see raw-routes.ts).
    serverFactory: (fastifyHandler: RequestListener, options: ServerTimeouts) =>
      createServer(tls, fastifyHandler, options, config.flood),
    bodyLimit: config.maxBodyBytes,
    // Client-supplied request ids are not trusted; correlation ids are generated per request.
    requestIdHeader: false,
    // Idle keep-alive sockets should not hold shutdown.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot(config, options.logStream),
    adapter,
    {
      bodyParser: false,
      bufferLogs: true,
      abortOnError: false,
    },
  );
  // The WebSocket gateway's `ws` server, built by Nest's platform adapter; set before init(), which
  // connects the gateways. Admission stays on the HTTP server's 'upgrade' event (ws.adapter.ts).
  app.useWebSocketAdapter(new GatewayWsAdapter(app, wsServerLimits(config)));
  // nestjs-pino's logger with a level per module (LOG_LEVELS).
  app.useLogger(app.get(GatewayLogger));
  const hostWarning = hostCheckWarning(config);
  if (hostWarning) app.get(Logger).warn(hostWarning, 'Bootstrap');
  const fastify = app.getHttpAdapter().getInstance();
  registerRawBodyParser(fastify);
  // DNS-rebinding protection on every route, not only the transports' (README "Security").
  const metrics = app.get(GatewayMetrics);
  installRequestGuard(fastify, config, (kind) => metrics.error(kind));
  // No enableShutdownHooks(): main.ts owns the signals and bounds the shutdown (app.close() runs the hooks).
  await app.init();
  return { app, config };
}

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** The Fastify options its own server factory applies to the server (Fastify's defaults when unset). */
interface ServerTimeouts {
  keepAliveTimeout?: number;
  requestTimeout?: number;
  connectionTimeout?: number;
  maxRequestsPerSocket?: number | null;
}

/**
 * The Node HTTP(S) server, configured as Fastify configures its own, that offers each request to
 * the transport that claimed its path as a raw route (/mcp, /sse, /messages) before Fastify.
 */
function createServer(
  tls: ReturnType<typeof readTlsFiles> | undefined,
  fastifyHandler: RequestListener,
  options: ServerTimeouts,
  limits: GatewayConfig['flood'],
): HttpServer {
  const serverOptions = {
    // Past it Node answers 431 before any of our code runs.
    maxHeaderSize: limits.maxHeaderBytes,
    // Node checks the header and request timeouts this often (its default, 30 s, would let a
    // 10 s timeout run to 40 s).
    connectionsCheckingInterval: Math.max(250, Math.min(5000, Math.floor(limits.headersTimeoutMs / 4))),
  };
  const server: HttpServer = tls
    ? https.createServer({ ...tls, ...serverOptions, handshakeTimeout: limits.headersTimeoutMs })
    : http.createServer(serverOptions);
  const routes = installRawRoutes(server);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    // A connection the flood guard refused when it was accepted: every request on it gets 503.
    const refusal = socketRefusal(req.socket);
    if (refusal !== undefined) {
      res.shouldKeepAlive = false;
      sendAdmissionRefused(res, refusal);
      return;
    }
    if (!routes.dispatch(req, res)) fastifyHandler(req, res);
  });
  server.keepAliveTimeout = options.keepAliveTimeout ?? 72_000;
  // Slowloris: the head and the whole request each have a deadline (Node answers 408). Only
  // receiving the request counts: long responses and SSE streams are not cut by either.
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.setTimeout(options.connectionTimeout ?? 0);
  if (options.maxRequestsPerSocket) server.maxRequestsPerSocket = options.maxRequestsPerSocket;
  return server;
}

/** Listens on the configured host/port; returns the base URL. */
export async function listen(gateway: Gateway, port = gateway.config.port): Promise<string> {
  await gateway.app.listen(port, gateway.config.host);
  const address = gateway.app.getHttpServer().address();
  const actualPort = typeof address === 'object' && address ? address.port : port;
  const host = gateway.config.host.includes(':') ? `[${gateway.config.host}]` : gateway.config.host;
  return `${gateway.config.tls ? 'https' : 'http'}://${host}:${actualPort}`;
}
