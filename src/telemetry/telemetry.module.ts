import { Global, Module } from '@nestjs/common';
import { GatewayMetrics } from './gateway-metrics.service';

/** The counters every layer bumps: global, as logging and tracing are. */
@Global()
@Module({
  providers: [GatewayMetrics],
  exports: [GatewayMetrics],
})
export class TelemetryModule {}
