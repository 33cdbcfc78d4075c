import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { GATEWAY_CONFIG } from '../config/config.module';
import type { GatewayConfig } from '../config/gateway-config';
import { AlgedonicBreakerListener } from '../vsm/algedonic-breaker.listener';
import { VsmBus } from '../vsm/vsm-bus.service';
import { ClientTransportGuard } from './client-transport-guard';

/**
 * The breaker and connection cap of each client transport; its pain/pleasure go to the algedonic
 * channel with source `transport:<kind>`, once per episode.
 */
@Injectable()
export class ClientTransportGuardService extends ClientTransportGuard implements OnApplicationShutdown {
  constructor(@Inject(GATEWAY_CONFIG) config: GatewayConfig, vsm: VsmBus) {
    super(
      config.clientBreaker,
      // A transport target (`transport:<kind>`) names itself in the log lines.
      new AlgedonicBreakerListener(vsm, {
        log: new Logger('ClientTransport'),
        field: 'transport',
        name: (target) => target,
      }),
    );
  }

  onApplicationShutdown(): void {
    this.shutdown();
  }
}
