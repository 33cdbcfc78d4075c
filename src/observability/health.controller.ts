import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import { PoolManager } from '../pool/pool-manager.service';
import { SessionService } from '../session/session.module';

@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly sessions: SessionService,
    private readonly pool: PoolManager,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([
      () => this.indicators.check('sessions').up({ active: this.sessions.size }),
      () => this.indicators.check('upstreams').up({ open: this.pool.stats().open }),
    ]);
  }
}
