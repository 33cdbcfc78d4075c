import {
  ForbiddenException,
  Inject,
  Injectable,
  Logger,
  Module,
  type CanActivate,
  type ExecutionContext,
  type OnModuleInit,
} from '@nestjs/common';
import { DiscoveryModule, DiscoveryService, HttpAdapterHost } from '@nestjs/core';
import { OnEvent } from '@nestjs/event-emitter';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GATEWAY_CONFIG } from '../config/config.module';
import type { GatewayConfig } from '../config/gateway-config';
import { GatewayMetrics } from '../telemetry/gateway-metrics.service';
import { VsmBus } from '../vsm/vsm-bus.service';
import { VsmChannel, type S5Event } from '../vsm/vsm.channels';
import { Admission, type AdmissionCheck } from './admission';

/**
 * Marks a provider as an admission check (an {@link AdmissionCheck}): a team provides one from a
 * module of its own and it runs once per new session on every transport (README "Security").
 * Nest has no multi-providers, so the checks are found by this marker (DiscoveryService).
 */
export const ADMISSION_CHECKS = DiscoveryService.createDecorator<void>();

/**
 * The admission step as a Nest provider: the transports get it injected and call it as plain
 * TypeScript.
 */
@Injectable()
export class AdmissionService extends Admission implements OnModuleInit {
  private readonly logger = new Logger('Audit');

  constructor(
    @Inject(GATEWAY_CONFIG) config: GatewayConfig,
    metrics: GatewayMetrics,
    bus: VsmBus,
    private readonly discovery: DiscoveryService,
    private readonly adapterHost: HttpAdapterHost,
  ) {
    const audit = new Logger('Audit');
    super(
      config,
      metrics,
      { log: (m, c) => audit.log(m, c), warn: (m, c) => audit.warn(m, c) },
      {
        checkCompliance: (action, context) =>
          bus.askPolicy(
            { type: 'check_compliance', action, context },
            config.s5.timeoutMs,
            config.s5.defaultVerdict,
          ),
      },
      config.auth.jwksCooldownMs,
    );
    if (config.auth.modes?.length === 1 && config.auth.modes[0] === 'none' && !loopback(config.host)) {
      this.logger.warn(
        `AUTH_MODE=none on ${config.host}: anyone who can reach the gateway can use it under any client id`,
      );
    }
  }

  async onModuleInit(): Promise<void> {
    await this.init();
    for (const wrapper of this.discovery.getProviders({ metadataKey: ADMISSION_CHECKS.KEY })) {
      const instance = wrapper.instance as AdmissionCheck | undefined;
      if (instance && typeof instance.check === 'function') this.use(instance);
    }
    if (this.oauthEnabled) this.serveMetadata();
  }

  /** RFC 9728 protected resource metadata, at the root and per path (`/mcp`, `/mcp/<service>`). */
  private serveMetadata(): void {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    const serve = (request: FastifyRequest, reply: FastifyReply) => {
      const suffix = (request.raw.url ?? '').split('?')[0].slice(METADATA_PATH.length);
      const req = { headers: request.raw.headers, socket: request.raw.socket, path: suffix || undefined };
      void reply
        .header('cache-control', 'public, max-age=300')
        .header('access-control-allow-origin', '*')
        .send(this.metadata(req));
    };
    fastify.get(METADATA_PATH, serve);
    fastify.get(`${METADATA_PATH}/*`, serve);
  }
}

const METADATA_PATH = '/.well-known/oauth-protected-resource';

function loopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/**
 * Applies the auth keys of S5 `policy_update('gateway', constraints)`: `disabledClients`
 * (string[]) and `allowedClients` (string[], or null to lift the allow-list). Other keys belong to
 * other areas and are ignored here.
 */
@Injectable()
export class AuthPolicyListener {
  private readonly log = new Logger('Audit');

  constructor(private readonly admission: AdmissionService) {}

  @OnEvent(VsmChannel.S5Policy)
  onPolicy(event: S5Event): undefined {
    if (event.type !== 'policy_update') return undefined;
    const c = event.constraints;
    const list = (v: unknown) =>
      Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
    const disabledClients = list(c.disabledClients);
    const allowedClients = c.allowedClients === null ? null : list(c.allowedClients);
    if (disabledClients === undefined && allowedClients === undefined) return undefined;
    this.admission.applyConstraints({ disabledClients, allowedClients });
    this.log.log(
      {
        event: 'policy_update',
        disabledClients: disabledClients?.length,
        allowedClients: allowedClients?.length ?? allowedClients,
      },
      'Audit',
    );
    return undefined;
  }
}

/**
 * S5 on the admin API: `check_compliance('admin.<METHOD> <path>')` before every admin action and
 * `verify_identity(operation)` before one that changes the gateway (anything but GET). A refusal
 * is 403 with S5's reason. Runs after AdminTokenGuard.
 */
@Injectable()
export class AdminPolicyGuard implements CanActivate {
  private readonly log = new Logger('Audit');

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly bus: VsmBus,
    private readonly metrics: GatewayMetrics,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const path = (request.raw.url ?? '').split('?')[0];
    const action = `admin.${request.method} ${path}`;
    const { timeoutMs, defaultVerdict } = this.config.s5;
    const address = request.raw.socket?.remoteAddress;
    let verdict = await this.bus.askPolicy(
      { type: 'check_compliance', action, context: { clientId: 'admin', address } },
      timeoutMs,
      defaultVerdict,
    );
    if (verdict.allowed && request.method !== 'GET' && request.method !== 'HEAD') {
      verdict = await this.bus.askPolicy(
        { type: 'verify_identity', operation: action, context: { clientId: 'admin', address } },
        timeoutMs,
        defaultVerdict,
      );
    }
    if (verdict.allowed) return true;
    this.metrics.authRefused('admin_policy_denied');
    this.log.warn(
      { event: 'refused', clientId: 'admin', action, address, reason: 'admin_policy_denied' },
      'Audit',
    );
    throw new ForbiddenException(`Refused by policy: ${verdict.reason ?? 'denied'}`);
  }
}

/**
 * Authentication, admission and S5 policy for every transport (README "Security"), imported by
 * the transport modules and the admin API.
 */
@Module({
  imports: [DiscoveryModule],
  providers: [AdmissionService, AuthPolicyListener, AdminPolicyGuard],
  exports: [AdmissionService, AdminPolicyGuard],
})
export class PolicyModule {}
