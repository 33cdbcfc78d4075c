import { Global, Module } from '@nestjs/common';
import { VsmBus } from './vsm-bus.service';

/** VSM integration: channel names, typed payloads and the bus the rest of the gateway publishes on. */
@Global()
@Module({
  providers: [VsmBus],
  exports: [VsmBus],
})
export class VsmModule {}
