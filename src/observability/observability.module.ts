import { Global, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { GatewayMetrics } from './gateway-metrics.service';
import { HealthController } from './health.controller';
import { MetricsController } from './metrics.controller';
import { MetricsTokenGuard } from './metrics-token.guard';
import { MetricsService } from './metrics.service';
import { Readiness } from './readiness.service';
import { VsmCommandCounter } from './vsm-command.counter';

@Global()
@Module({
  imports: [
    TerminusModule.forRoot({ logger: false }),
    // Our controller serves this gateway's own registry; default metrics go to a process-wide
    // registry of ours (prom-client's global one would collide between gateways in one process).
    PrometheusModule.register({ controller: MetricsController, defaultMetrics: { enabled: false } }),
  ],
  controllers: [HealthController],
  providers: [GatewayMetrics, MetricsService, MetricsTokenGuard, Readiness, VsmCommandCounter],
  exports: [GatewayMetrics, MetricsService],
})
export class ObservabilityModule {}
