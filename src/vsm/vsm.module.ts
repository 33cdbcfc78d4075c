import { Global, Module } from '@nestjs/common';
import { ClientUsage } from './client-usage';
import { S2Coordinator } from './s2-coordinator.listener';
import { S5PolicyListener } from './s5-policy.listener';
import { VsmBus } from './vsm-bus.service';
import { VsmGauges } from './vsm-gauges';

/**
 * VSM integration: channel names, typed payloads and the bus the rest of the gateway publishes on.
 * Global, like configuration and telemetry: every layer publishes on the bus. ClientUsage (the
 * per-client counters behind S4's usage patterns) lives here because sessions bump it per message
 * and S4 (src/ops) reads it.
 */
@Global()
@Module({
  providers: [VsmBus, ClientUsage, S2Coordinator, S5PolicyListener, VsmGauges],
  exports: [VsmBus, ClientUsage],
})
export class VsmModule {}
