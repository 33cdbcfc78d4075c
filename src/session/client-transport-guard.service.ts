import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { GATEWAY_CONFIG } from '../config/config.module';
import type { GatewayConfig } from '../config/gateway-config';
import { VsmChannel } from '../vsm/vsm.channels';
import { VsmBus } from '../vsm/vsm-bus.service';
import { ClientTransportGuard } from './client-transport-guard';

/**
 * The breaker and connection cap of each client transport; its pain/pleasure go to the algedonic
 * channel with source `transport:<kind>`, once per episode.
 */
@Injectable()
export class ClientTransportGuardService extends ClientTransportGuard implements OnApplicationShutdown {
  constructor(@Inject(GATEWAY_CONFIG) config: GatewayConfig, vsm: VsmBus) {
    const log = new Logger('ClientTransport');
    super(config.clientBreaker, {
      hurting: (target, message, context) => {
        log.warn({ transport: target, ...context }, `${target} is failing: ${message}`);
        vsm.publish(VsmChannel.Algedonic, {
          type: 'pain',
          severity: 'critical',
          source: target,
          message,
          context,
        });
      },
      recovered: (target, recoveryMetrics) => {
        log.log({ transport: target, ...recoveryMetrics }, `${target} recovered`);
        vsm.publish(VsmChannel.Algedonic, {
          type: 'pleasure',
          severity: 'moderate',
          source: target,
          recoveryMetrics,
        });
      },
    });
  }

  onApplicationShutdown(): void {
    this.shutdown();
  }
}
