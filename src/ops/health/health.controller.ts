import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import type { HealthIndicator } from '../../telemetry/health-source';
import { Readiness } from './readiness.service';

/**
 * /health (as before: the process answers, with session and upstream counts), /health/live
 * (the process works: its event loop is not stuck) and /health/ready (configured replicas take
 * work, pools are not exhausted, Redis answers when configured, not shutting down). A check that
 * is down answers 503 with terminus' report of every check. The session and pool figures come
 * from those layers' own HEALTH_SOURCE providers, through Readiness.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly readiness: Readiness,
  ) {}

  /** A feature's own check (HEALTH_SOURCE) as a terminus indicator. */
  private feature(indicator: HealthIndicator) {
    return async () => {
      const report = await indicator.check();
      const check = this.indicators.check(indicator.name);
      return report.up ? check.up(report.details) : check.down(report.details);
    };
  }

  @Get()
  @HealthCheck()
  check() {
    return this.health.check(this.readiness.indicators('health').map((i) => this.feature(i)));
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
      ...this.readiness.indicators('live').map((i) => this.feature(i)),
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
      // The replicas of every service, the pools (PoolReadout) and whatever else a feature adds.
      ...this.readiness.indicators('ready').map((i) => this.feature(i)),
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
