import {
  Inject,
  Injectable,
  Logger,
  Module,
  type BeforeApplicationShutdown,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';
import type { JsonRpcId, JsonRpcMessage, JsonRpcRequest } from '../../libs/protocol/src/jsonrpc';
import { GATEWAY_CONFIG } from '../config/config.module';
import type { GatewayConfig } from '../config/gateway-config';
import { PoolManager } from '../pool/pool-manager.service';
import { PoolModule } from '../pool/pool.module';
import { Router } from '../routing/router.service';
import { RoutingModule } from '../routing/routing.module';
import { VsmChannel } from '../vsm/vsm.channels';
import { VsmBus } from '../vsm/vsm-bus.service';
import { GAUGE_SOURCE, type Gauge, type GaugeSource } from '../telemetry/gauge-source';
import { GatewayMetrics } from '../telemetry/gateway-metrics.service';
import { HEALTH_SOURCE, type HealthIndicator, type HealthSource } from '../telemetry/health-source';
import { STATS_SOURCE, type StatsPart, type StatsSource } from '../telemetry/stats-source';
import { METHOD_TOOLS_LIST } from '../telemetry/mcp-methods';
import { logFields } from '../telemetry/logging/log-fields';
import { headerValue } from '../telemetry/tracing/trace-context';
import { Tracing } from '../telemetry/tracing/tracing';
import type { MessageHeaders } from '../upstream/upstream-connection';
import { ClientUsage } from '../vsm/client-usage';
import { ClientTransportGuardService } from './client-transport-guard.service';
import { S3TransportListener } from './s3-transport.listener';
import { sessionGauges, sessionHealthIndicators, sessionStats } from './session-readout';
import type { Session, SessionHooks } from './session';
import type { ServiceDirectory } from './session';
import { SessionRegistry, type SessionLimits } from './session-registry';
import { InMemorySessionStore } from './session-store';
import type { AnswerFilter } from './answer-filter';
import { EndReason } from '../core/end-reason';

/** What clients are told when the gateway shuts down (WebSocket "going away"; the session stays resumable). */
const GOING_AWAY = EndReason.GoingAway;

/** What sessions report to the rest of the gateway: S1 events, metrics, logs. */
@Injectable()
export class GatewaySessionHooks implements SessionHooks {
  private readonly log = new Logger('Session');
  /** Told when a session ends, so per-client session counts stay true (set with the registry's). */
  sessionLimits: SessionLimits | undefined = undefined;
  /** Filters list answers for clients with rules (set by the policy layer, see useAnswerFilter). */
  answers: AnswerFilter | undefined = undefined;

  constructor(
    private readonly vsm: VsmBus,
    private readonly metrics: GatewayMetrics,
    private readonly transports: ClientTransportGuardService,
    private readonly usage: ClientUsage,
  ) {}

  rewritesAnswer(session: Session, request: JsonRpcRequest): boolean {
    return this.answers !== undefined && this.answers.filtersAnswer(session.clientId, request.method);
  }

  rewriteAnswer(session: Session, method: string, response: JsonRpcMessage): string | undefined {
    return this.answers?.filterAnswer(session.clientId, method, response);
  }

  clientMessage(session: Session, message: JsonRpcMessage, raw?: string): void {
    this.metrics.messageIn(session.transport, raw === undefined ? 0 : Buffer.byteLength(raw));
    // S4's per-client counters (usage patterns): one Map lookup, no allocation.
    this.usage.record(session.clientId, message);
    if (!this.vsm.hasListeners(VsmChannel.S1Operations)) {
      // The event still happened (variety flow); nobody listens, so no payload is built.
      this.vsm.events.s1_operations++;
    } else {
      this.vsm.publishS1({
        type: 'external_message',
        clientId: session.clientId,
        payload: message,
        metadata: {
          sessionId: session.id,
          transport: session.transport,
          service: session.service,
          receivedAt: Date.now(),
        },
      });
    }
  }

  upstreamMessage(session: Session, _message: JsonRpcMessage, bytes: number): void {
    this.metrics.messageOut(session.transport, bytes);
  }

  requestCompleted(
    _session: Session,
    method: number,
    tool: string | undefined,
    ms: number,
    response: JsonRpcMessage,
  ): void {
    this.metrics.requestCompleted(method, tool, ms);
    // The tool names an upstream declares bound the per-tool label (a tools/list answer is rare).
    if (method === METHOD_TOOLS_LIST && 'result' in response) this.metrics.learnTools(response.result);
  }

  backpressure(_session: Session, paused: boolean): void {
    if (paused) this.metrics.upstreamPauses++;
    else this.metrics.upstreamResumes++;
  }

  overloaded(session: Session): void {
    this.metrics.error('overloaded');
    this.log.debug(logFields(session), 'message refused: too much waits for the upstream to connect');
  }

  unrequestedAnswer(session: Session, id: JsonRpcId | null): void {
    this.metrics.error('unrequested_answer');
    this.log.debug(
      { ...logFields(session), id },
      'answer dropped: no such request was delivered to this session',
    );
  }

  overflow(session: Session): void {
    this.metrics.error('outbox_overflow');
    this.log.warn(logFields(session), 'session closed: outbox overflow');
  }

  sessionClosed(session: Session, reason: string): void {
    this.transports.closed(session.createdOn);
    this.sessionLimits?.closed(session.clientId);
    this.metrics.sessionClosed(session.transport);
    this.log.debug({ ...logFields(session), reason }, 'session closed');
  }
}

/** Sessions ended per event-loop turn on shutdown. */
const SHUTDOWN_CLOSE_BATCH = 256;

/**
 * Owns the session registry and its sweep timer; drains sessions on shutdown. Reports its gauges
 * and health (session-readout.ts) to the operations layer, which finds it by its markers.
 */
@GAUGE_SOURCE()
@HEALTH_SOURCE()
@STATS_SOURCE()
@Injectable()
export class SessionService
  extends SessionRegistry
  implements
    OnModuleInit,
    BeforeApplicationShutdown,
    OnApplicationShutdown,
    ServiceDirectory,
    GaugeSource,
    HealthSource,
    StatsSource
{
  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    pool: PoolManager,
    private readonly router: Router,
    private readonly sessionHooks: GatewaySessionHooks,
    vsm: VsmBus,
    metrics: GatewayMetrics,
    private readonly transports: ClientTransportGuardService,
  ) {
    super(
      new InMemorySessionStore(),
      config.session,
      (service, routing) =>
        pool.open(
          service,
          router.keyFor(service, routing),
          Tracing.enabled ? callerTraceOf(routing.headers) : undefined,
        ),
      sessionHooks,
      async (session, to) => {
        const verdict = await vsm.checkOscillation({
          type: 'check_oscillation',
          clientId: session.policyKey,
          from: session.transport,
          to,
        });
        // Refusals are counted by the transport that answers them.
        if (verdict.allowed) metrics.transportSwitch(session.transport, to);
        return verdict;
      },
    );
    this.transportGuard = transports;
    this.onOutboxDrop = (reason, entries, bytes) => {
      metrics.outboxDropped[reason] += entries;
      metrics.outboxDroppedBytes[reason] += bytes;
    };
  }

  onModuleInit(): void {
    this.start();
  }

  /** Puts `limits` on every new session, and tells them when one ends (flood protection). */
  useSessionLimits(limits: SessionLimits): void {
    this.sessionLimits = limits;
    this.sessionHooks.sessionLimits = limits;
  }

  /**
   * Sessions ask `filter` before relaying an answer (the policy layer registers its MessagePolicy
   * at start-up, before any session exists); without one, answers pass unchanged.
   */
  useAnswerFilter(filter: AnswerFilter): void {
    this.sessionHooks.answers = filter;
  }

  /** The default service (ServiceDirectory: transports ask the session layer, not the router). */
  get defaultService(): string {
    return this.router.defaultService;
  }

  hasService(service: string): boolean {
    return this.router.hasService(service);
  }

  private draining: Promise<void> | undefined;

  /** True from the first step of shutdown on (readiness reports it). */
  get isDraining(): boolean {
    return this.draining !== undefined;
  }

  gauges(): readonly Gauge[] {
    return sessionGauges(this, this.transports);
  }

  healthIndicators(): readonly HealthIndicator[] {
    return sessionHealthIndicators(this);
  }

  statsPart(): StatsPart {
    return sessionStats(this, this.transports);
  }

  /** HealthSource: not ready from the first step of shutdown on. */
  shuttingDown(): boolean {
    return this.isDraining;
  }

  /**
   * Shutdown, step one (also called by the transports before they close their connections,
   * whatever order Nest runs the hooks in): requests in flight get up to shutdownGraceMs to
   * be answered, then every session ends, which ends its streams. Only after that may the
   * HTTP server close — it waits for open connections.
   */
  drain(): Promise<void> {
    this.draining ??= (async () => {
      const deadline = Date.now() + this.config.shutdownGraceMs;
      while (Date.now() < deadline && this.inFlightTotal() > 0) {
        await new Promise((r) => setTimeout(r, 25));
      }
      this.stop();
      await this.closeAllInBatches('gateway shutting down', GOING_AWAY);
    })();
    return this.draining;
  }

  /**
   * Ends every session, giving the event loop a turn between batches: ending tens of thousands
   * in one loop holds off I/O and the shutdown deadline in main.ts for seconds.
   */
  private async closeAllInBatches(reason: string, code: number): Promise<void> {
    let n = 0;
    for (const session of [...this.all()]) {
      if (!session.closed) this.end(session, reason, code);
      if (++n % SHUTDOWN_CLOSE_BATCH === 0) await new Promise((r) => setImmediate(r));
    }
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.drain();
  }

  inFlightTotal(): number {
    let n = 0;
    for (const s of this.all()) n += s.inFlightCount;
    return n;
  }

  onApplicationShutdown(): void {
    this.stop();
    this.closeAll('gateway shutting down', GOING_AWAY);
  }
}

/**
 * Sessions and the client-transport guard. The policy layer above registers what sessions ask
 * it (answer filter, session limits) through SessionService, so nothing here imports policy.
 */
@Module({
  imports: [RoutingModule, PoolModule],
  providers: [ClientTransportGuardService, GatewaySessionHooks, SessionService, S3TransportListener],
  exports: [SessionService, ClientTransportGuardService],
})
export class SessionModule {}

/** The W3C trace context of the request that created a session (its upstream connect joins it). */
function callerTraceOf(headers: IncomingHttpHeaders | undefined): MessageHeaders | undefined {
  const traceparent = headerValue(headers?.traceparent);
  if (traceparent === undefined) return undefined;
  const tracestate = headerValue(headers?.tracestate);
  return tracestate === undefined ? { traceparent } : { traceparent, tracestate };
}
