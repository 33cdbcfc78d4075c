import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import { PoolManager } from '../../pool/pool-manager.service';
import { SessionService } from '../../session/session.module';
import { Readiness } from './readiness.service';

/**
 * /health (as before: the process answers, with session and upstream counts), /health/live
 * (the process works: its event loop is not stuck) and /health/ready (configured replicas take
 * work, pools are not exhausted, Redis answers when configured, not shutting down). A check that
 * is down answers 503 with terminus' report of every check.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly sessions: SessionService,
    private readonly pool: PoolManager,
    private readonly readiness: Readiness,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([
      () => this.indicators.check('sessions').up({ active: this.sessions.size }),
      () => this.indicators.check('upstreams').up({ open: this.pool.stats().open }),
    ]);
  }

  @Get('live')
  @HealthCheck()
  live() {
    return this.health.check([
      () => {
        const lag = this.readiness.eventLoopLag();
        const check = this.indicators.check('event_loop');
        return lag.p99Ms <= lag.limitMs ? check.up(lag) : check.down(lag);
      },
    ]);
  }

  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([
      () => {
        const check = this.indicators.check('shutdown');
        return this.readiness.draining ? check.down({ draining: true }) : check.up({ draining: false });
      },
      () => {
        const services = this.readiness.replicas();
        const check = this.indicators.check('replicas');
        // Ready while every service has a replica that takes work; an empty service cannot serve.
        const ok = Object.values(services).every((s) => s.up.length > 0);
        return ok ? check.up({ services }) : check.down({ services });
      },
      () => {
        const exhausted = this.readiness.exhaustedPools();
        const check = this.indicators.check('pools');
        return exhausted.length === 0 ? check.up() : check.down({ exhausted });
      },
      async () => {
        const redis = await this.readiness.redisReachable();
        const check = this.indicators.check('redis');
        if (redis === undefined) return check.up({ configured: false });
        return redis.ok
          ? check.up({ configured: true })
          : check.down({ configured: true, error: redis.error });
      },
    ]);
  }
}
