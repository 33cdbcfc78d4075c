import { Inject, Injectable } from '@nestjs/common';
import { GATEWAY_CONFIG } from '../config/config.module';
import type { GatewayConfig, ReplicaConfig } from '../config/gateway-config';
import { EmbeddedUpstream } from './embedded.upstream';
import { SseUpstream } from './sse.upstream';
import { StdioUpstream } from './stdio.upstream';
import { StreamableHttpUpstream } from './streamable-http.upstream';
import { WsUpstream } from './ws.upstream';
import type { UpstreamConnection } from './upstream-connection';
import type { UpstreamOptions } from './upstream-options';

/** Builds the UpstreamConnection for a replica's transport. */
@Injectable()
export class UpstreamFactory {
  private readonly options: UpstreamOptions;

  constructor(@Inject(GATEWAY_CONFIG) config: GatewayConfig) {
    this.options = config.upstream;
  }

  create(replica: ReplicaConfig): UpstreamConnection {
    switch (replica.transport) {
      case 'streamable-http':
        return new StreamableHttpUpstream(replica, this.options);
      case 'sse':
        return new SseUpstream(replica, this.options);
      case 'stdio':
        return new StdioUpstream(replica, this.options);
      case 'ws':
        return new WsUpstream(replica, this.options);
      case 'embedded':
        return new EmbeddedUpstream(replica, this.options);
    }
  }
}
