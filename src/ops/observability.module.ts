import { Global, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { HealthController } from './health/health.controller';
import { MetricsController } from './metrics/metrics.controller';
import { MetricsTokenGuard } from './metrics/metrics-token.guard';
import { MetricsService } from './metrics/metrics.service';
import { Readiness } from './health/readiness.service';
import { VsmCommandCounter } from './vsm-command.counter';

/** /metrics and /health: the exposition, the probes and the VSM command counter. */
@Global()
@Module({
  imports: [
    // Gauges and health checks come from the providers marked GAUGE_SOURCE / HEALTH_SOURCE.
    DiscoveryModule,
    TerminusModule.forRoot({ logger: false }),
    // Our controller serves this gateway's own registry; default metrics go to a process-wide
    // registry of ours (prom-client's global one would collide between gateways in one process).
    PrometheusModule.register({ controller: MetricsController, defaultMetrics: { enabled: false } }),
  ],
  controllers: [HealthController],
  providers: [MetricsService, MetricsTokenGuard, Readiness, VsmCommandCounter],
  exports: [MetricsService],
})
export class ObservabilityModule {}
