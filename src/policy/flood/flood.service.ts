import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { OnEvent } from '@nestjs/event-emitter';
import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { GatewayMetrics } from '../../telemetry/gateway-metrics.service';
import type { Session } from '../../session/session';
import { softDescriptorLimit } from '../../session/session-capacity';
import { SessionService } from '../../session/session.module';
import { VsmChannel, type S5Event } from '../../vsm/vsm.channels';
import { TrustedProxies } from '../../core/trusted-proxies';
import type { FloodLimits } from '../../core/limits';
import { FloodGuard } from './flood-guard';

/** The FloodLimits keys S5 `policy_update('gateway', { caps: { … } })` may change live. */
const CAP_KEYS: readonly (keyof FloodLimits)[] = [
  'maxConnections',
  'maxConnectionsPerIp',
  'connectRatePerIp',
  'connectBurstPerIp',
  'sessionRatePerIp',
  'sessionBurstPerIp',
  'maxSessionsPerClient',
  'initDeadlineMs',
];

/** Part of the descriptor limit the connection cap leaves for upstreams, logs and files. */
const DESCRIPTOR_SHARE = 0.9;

/**
 * Owns the gateway's FloodGuard: counts connections as the HTTP server accepts them, puts the
 * session limits on the registry, runs the initialize deadline, and takes new caps from S5.
 */
@Injectable()
export class FloodService implements OnModuleInit, OnApplicationShutdown {
  private readonly log = new Logger('Flood');
  readonly guard: FloodGuard;
  private server: HttpServer | undefined = undefined;
  private readonly onConnection = (socket: Socket): void => this.guard.connected(socket);
  private readonly onClientError = (err: { code?: string }): void => this.guard.clientError(err.code);

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly adapterHost: HttpAdapterHost,
    private readonly sessions: SessionService,
    metrics: GatewayMetrics,
  ) {
    const limits: FloodLimits = {
      maxConnections: this.connectionCap(config.flood.maxConnections),
      maxConnectionsPerIp: config.flood.maxConnectionsPerIp,
      connectRatePerIp: config.flood.connectRatePerIp,
      connectBurstPerIp: config.flood.connectBurstPerIp,
      sessionRatePerIp: config.flood.sessionRatePerIp,
      sessionBurstPerIp: config.flood.sessionBurstPerIp,
      maxSessionsPerClient: config.flood.maxSessionsPerClient,
      initDeadlineMs: config.flood.initDeadlineMs,
    };
    this.guard = new FloodGuard(limits, new TrustedProxies(config.trustedProxies), metrics.floodRefusals);
    this.guard.endSession = (session, reason) => sessions.end(session as Session, reason);
  }

  /** The configured cap, but never more connections than the process has descriptors for. */
  private connectionCap(configured: number): number {
    const limit = this.config.session.fdLimit ?? softDescriptorLimit();
    if (limit === undefined) return configured;
    const fits = Math.floor(limit * DESCRIPTOR_SHARE);
    if (configured !== 0 && configured <= fits) return configured;
    this.log.warn(
      `MAX_CONNECTIONS ${configured === 0 ? '(no cap)' : configured} is above what ${limit} file descriptors allow: using ${fits}`,
    );
    return fits;
  }

  onModuleInit(): void {
    const server = this.adapterHost.httpAdapter?.getHttpServer() as HttpServer | undefined;
    if (server) {
      this.server = server;
      // With TLS a connection counts once its handshake is done (HEADERS_TIMEOUT_MS bounds the handshake).
      server.on(this.config.tls ? 'secureConnection' : 'connection', this.onConnection);
      server.on('clientError', this.onClientError);
    }
    this.sessions.useSessionLimits(this.guard);
    this.guard.start();
  }

  onApplicationShutdown(): void {
    this.guard.stop();
    this.server?.off(this.config.tls ? 'secureConnection' : 'connection', this.onConnection);
    this.server?.off('clientError', this.onClientError);
  }

  /** S5 `policy_update('gateway', { caps })`: the next connection or session sees the new caps. */
  @OnEvent(VsmChannel.S5Policy)
  policy(event: S5Event): void {
    if (event.type !== 'policy_update' || event.scope !== 'gateway') return;
    const caps = event.constraints?.caps;
    if (caps === undefined) return;
    const { changes, problems } = parseCaps(caps);
    for (const problem of problems) this.log.warn(`S5 policy_update caps: ${problem}`);
    if (Object.keys(changes).length === 0) return;
    if (changes.maxConnections !== undefined)
      changes.maxConnections = this.connectionCap(changes.maxConnections);
    this.guard.update(changes);
    this.log.log({ caps: changes }, 'S5 policy_update: flood caps changed');
  }
}

/** The caps an S5 update names, each a non-negative number; anything else is listed and ignored. */
export function parseCaps(caps: unknown): { changes: Partial<FloodLimits>; problems: string[] } {
  const changes: Partial<FloodLimits> = {};
  const problems: string[] = [];
  if (caps === null || typeof caps !== 'object' || Array.isArray(caps)) {
    return { changes, problems: ['caps must be an object'] };
  }
  for (const [key, value] of Object.entries(caps as Record<string, unknown>)) {
    if (!(CAP_KEYS as readonly string[]).includes(key)) {
      problems.push(`unknown cap "${key}" (known: ${CAP_KEYS.join(', ')})`);
      continue;
    }
    const burst = key === 'connectBurstPerIp' || key === 'sessionBurstPerIp';
    if (typeof value !== 'number' || !Number.isFinite(value) || value < (burst ? 1 : 0)) {
      problems.push(`${key} must be a number ≥ ${burst ? 1 : 0}`);
      continue;
    }
    changes[key as keyof FloodLimits] = value;
  }
  return { changes, problems };
}
