import { Global, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { GatewayMetrics } from './gateway-metrics.service';
import { HealthController } from './health.controller';

@Global()
@Module({
  imports: [TerminusModule.forRoot({ logger: false })],
  controllers: [HealthController],
  providers: [GatewayMetrics],
  exports: [GatewayMetrics],
})
export class ObservabilityModule {}
