import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { HealthController } from './health/health.controller';
import { MetricsController } from './metrics/metrics.controller';
import { MetricsTokenGuard } from './metrics/metrics-token.guard';
import { MetricsModule } from './metrics/metrics.module';
import { Readiness } from './health/readiness.service';
import { VsmCommandCounter } from './vsm-command.counter';

/** /metrics and /health: the exposition, the probes and the VSM command counter. */
@Module({
  imports: [
    // Gauges and health checks come from the providers marked GAUGE_SOURCE / HEALTH_SOURCE.
    DiscoveryModule,
    TerminusModule.forRoot({ logger: false }),
    // Our controller serves this gateway's own registry; default metrics go to a process-wide
    // registry of ours (prom-client's global one would collide between gateways in one process).
    // The controller lives in the PrometheusModule, so that module imports what it injects.
    {
      ...PrometheusModule.register({ controller: MetricsController, defaultMetrics: { enabled: false } }),
      imports: [MetricsModule],
    },
  ],
  controllers: [HealthController],
  providers: [MetricsTokenGuard, Readiness, VsmCommandCounter],
})
export class ObservabilityModule {}
