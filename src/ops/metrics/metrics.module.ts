import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { MetricsService } from './metrics.service';

/**
 * The /metrics exposition. Its own module because MetricsController is hosted by the
 * PrometheusModule (`register({ controller })`), which imports this one to inject it.
 */
@Module({
  // Gauges come from the providers marked GAUGE_SOURCE.
  imports: [DiscoveryModule],
  providers: [MetricsService],
  exports: [MetricsService],
})
export class MetricsModule {}
