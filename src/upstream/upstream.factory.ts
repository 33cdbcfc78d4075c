import { Inject, Injectable } from '@nestjs/common';
import { GATEWAY_CONFIG } from '../config/config.module';
import type { GatewayConfig, ReplicaConfig } from '../config/gateway-config';
import type { UpstreamConnection } from './upstream-connection';
import { UPSTREAM_CONNECTIONS, type UpstreamConstructor } from './upstream-kinds';
import type { UpstreamOptions } from './upstream-options';

/** Builds the UpstreamConnection for a replica's transport (the kinds are in upstream-kinds.ts). */
@Injectable()
export class UpstreamFactory {
  private readonly options: UpstreamOptions;

  constructor(@Inject(GATEWAY_CONFIG) config: GatewayConfig) {
    this.options = config.upstream;
  }

  create(replica: ReplicaConfig): UpstreamConnection {
    // The registry's type pairs each kind with its own replica type; indexing it by a union loses
    // that pairing, so the lookup is widened to the union the replica belongs to.
    const Connection = UPSTREAM_CONNECTIONS[replica.transport] as UpstreamConstructor<
      typeof replica.transport
    >;
    return new Connection(replica, this.options);
  }
}
