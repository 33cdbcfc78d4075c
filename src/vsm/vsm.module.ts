import { Global, Module } from '@nestjs/common';
import { S2Coordinator } from './s2-coordinator.listener';
import { VsmBus } from './vsm-bus.service';

/** VSM integration: channel names, typed payloads and the bus the rest of the gateway publishes on. */
@Global()
@Module({
  providers: [VsmBus, S2Coordinator],
  exports: [VsmBus],
})
export class VsmModule {}
