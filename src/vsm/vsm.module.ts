import { Global, Module } from '@nestjs/common';
import { S2Coordinator } from './s2-coordinator.listener';
import { S5PolicyListener } from './s5-policy.listener';
import { VsmBus } from './vsm-bus.service';
import { VsmGauges } from './vsm-gauges';

/** VSM integration: channel names, typed payloads and the bus the rest of the gateway publishes on. */
@Global()
@Module({
  providers: [VsmBus, S2Coordinator, S5PolicyListener, VsmGauges],
  exports: [VsmBus],
})
export class VsmModule {}
