import { Inject, Injectable } from '@nestjs/common';
import { GATEWAY_CONFIG } from '../config/config.module';
import type { GatewayConfig } from '../config/gateway-config';
import { ReplicaStates } from './replica-states';
import { RoutingTable } from './routing-table';

export {
  DuplicateReplicaError,
  UnknownReplicaError,
  UnknownServiceError,
  type Placement,
  type RoutingInput,
} from './routing-table';

/**
 * Picks the replicas a session may use, in failover order (primary first), from one hash ring per
 * service. The routing table is plain TypeScript; this provider builds it from the configuration
 * and shares its replica states with the modules that mark replicas unhealthy.
 */
@Injectable()
export class Router extends RoutingTable {
  constructor(@Inject(GATEWAY_CONFIG) config: GatewayConfig, states: ReplicaStates) {
    super(config.services, config.defaultService, states);
  }
}
