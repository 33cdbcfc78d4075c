import { Injectable, Logger, Module, type OnApplicationShutdown } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { GATEWAY_CONFIG } from '../config/config.module';
import type { GatewayConfig } from '../config/gateway-config';
import { GatewayMetrics } from '../telemetry/gateway-metrics.service';
import { VsmChannel, type S3Event, type S5Event } from '../vsm/vsm.channels';
import { SessionModule, SessionService } from '../session/session.module';
import { MessagePolicy } from './message-policy';
import { RateLimitGuard } from './rate-limit/rate-limit.guard';
import { SharedLimiter } from './rate-limit/shared-limiter';
import { TrustedProxies } from '../core/trusted-proxies';

function createPolicy(config: GatewayConfig, metrics: GatewayMetrics): MessagePolicy {
  const log = new Logger('RateLimit');
  const r = config.rateLimit;
  let lastError = '';
  const shared =
    r.enabled && r.redisUrl
      ? new SharedLimiter({
          url: r.redisUrl,
          failMode: r.redisFailMode,
          syncIntervalMs: r.syncIntervalMs,
          keyPrefix: 'mcpgw:rl',
          onError: (err) => {
            // ioredis reports every failed reconnect: one line per distinct error is enough.
            if (err.message === lastError) return;
            lastError = err.message;
            log.warn(
              `Redis for rate limits: ${err.message} (${r.redisFailMode === 'open' ? 'each node limits alone' : 'refusing requests'})`,
            );
          },
        })
      : undefined;
  shared?.redis.on('ready', () => {
    if (lastError !== '') log.log('Redis for rate limits is back');
    lastError = '';
  });
  return new MessagePolicy(
    { enabled: r.enabled, perSecond: r.perSecond, burst: r.burst },
    config.clients,
    metrics,
    new TrustedProxies(config.trustedProxies),
    shared,
  );
}

/** S3 adjust_rate_limit and S5 policy_update('gateway', …) change the policy from the next request. */
@Injectable()
export class PolicyVsmListener implements OnApplicationShutdown {
  private readonly log = new Logger('Policy');

  constructor(private readonly policy: MessagePolicy) {}

  @OnEvent(VsmChannel.S3Control)
  s3(event: S3Event): void {
    if (event.type !== 'adjust_rate_limit') return;
    if (this.policy.adjustRateLimit(event.clientId, event.newLimit)) {
      this.log.log(`adjust_rate_limit ${event.clientId} → ${event.newLimit}/s`);
    } else {
      this.log.warn(`adjust_rate_limit ${event.clientId}: ignored (newLimit must be a number ≥ 0)`);
    }
  }

  @OnEvent(VsmChannel.S5Policy)
  s5(event: S5Event): void {
    if (event.type !== 'policy_update' || event.scope !== 'gateway') return;
    const c = event.constraints ?? {};
    if (!('rateLimit' in c) && !('clients' in c)) return;
    const problems = this.policy.applyConstraints(c);
    if (problems.length > 0) this.log.warn(`policy_update refused: ${problems.join('; ')}`);
    else this.log.log(`policy_update applied (${Object.keys(c).join(', ')})`);
  }

  onApplicationShutdown(): void {
    this.policy.close();
  }
}

/**
 * The per-message policy (rate limits, authorization) that the transports and the admin API's
 * RateLimitGuard ask; each of those modules imports this one.
 */
@Module({
  imports: [SessionModule],
  providers: [
    {
      provide: MessagePolicy,
      useFactory: createPolicy,
      inject: [GATEWAY_CONFIG, GatewayMetrics],
    },
    PolicyVsmListener,
    RateLimitGuard,
  ],
  exports: [MessagePolicy, RateLimitGuard],
})
export class MessagePolicyModule {
  constructor(sessions: SessionService, policy: MessagePolicy) {
    // Sessions filter list answers through the interface they declare (src/session/answer-filter.ts).
    sessions.useAnswerFilter(policy);
  }
}
