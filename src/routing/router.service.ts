import { Inject, Injectable } from '@nestjs/common';
import { GATEWAY_CONFIG } from '../config/config.module';
import type { GatewayConfig, ReplicaConfig } from '../config/gateway-config';

export class UnknownServiceError extends Error {
  constructor(readonly service: string) {
    super(`unknown service "${service}"`);
  }
}

/**
 * Picks the replicas a session may use, in failover order (primary first).
 * For now the order is the declared one; the consistent-hash ring slots in here.
 */
@Injectable()
export class Router {
  private readonly replicas = new Map<string, ReplicaConfig[]>();

  constructor(@Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig) {
    for (const [name, service] of Object.entries(config.services)) {
      this.replicas.set(
        name,
        service.replicas.map((r, i) => ({ ...r, id: `${name}#${i}` })),
      );
    }
  }

  get defaultService(): string {
    return this.config.defaultService;
  }

  hasService(service: string): boolean {
    return this.replicas.has(service);
  }

  services(): string[] {
    return [...this.replicas.keys()];
  }

  /** Ordered replicas for `service`; `_key` (client id or session id) will choose the ring position. */
  pick(service: string, _key: string): ReplicaConfig[] {
    const list = this.replicas.get(service);
    if (!list) throw new UnknownServiceError(service);
    return list;
  }
}
