import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { GATEWAY_CONFIG } from '../config/config.module';
import type { GatewayConfig, ResolvedReplica } from '../config/gateway-config';
import { Router } from '../routing/router.service';
import { UpstreamFactory } from '../upstream/upstream.factory';
import type { UpstreamConnection, UpstreamLease } from '../upstream/upstream-connection';

/**
 * Hands out upstream connections. In `dedicated` mode every lease is a fresh connection
 * that lives as long as the session; `pooled` mode (generic-pool per replica) slots in here.
 */
@Injectable()
export class PoolManager implements OnApplicationShutdown {
  private readonly log = new Logger(PoolManager.name);
  private readonly live = new Set<UpstreamConnection>();
  /** Connections released but not yet closed (a stdio child still exiting): shutdown waits for them. */
  private readonly closing = new Set<Promise<void>>();

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly router: Router,
    private readonly factory: UpstreamFactory,
  ) {}

  /** Opens the session's upstream on the first replica that starts, in the router's failover order. */
  async acquire(service: string, key: string): Promise<UpstreamLease> {
    const replicas = this.router.pick(service, key);
    if (replicas.length === 0) {
      throw new Error(`no replica of "${service}" takes new sessions (all draining or unhealthy)`);
    }
    const errors: string[] = [];
    for (const replica of replicas) {
      try {
        const lease = await this.acquireOn(replica);
        // Counted on the ring once the upstream is up: bounded loads and the admin API's per-replica sessions.
        const placement = this.router.place(service, key, replica.id);
        return {
          connection: lease.connection,
          release: () => {
            placement.release();
            lease.release();
          },
        };
      } catch (err) {
        errors.push(`${replica.id}: ${(err as Error).message}`);
        this.log.warn(`upstream ${replica.id} failed to start: ${(err as Error).message}`);
      }
    }
    throw new Error(`no replica of "${service}" could be reached (${errors.join('; ')})`);
  }

  private async acquireOn(replica: ResolvedReplica): Promise<UpstreamLease> {
    const connection = this.factory.create(replica);
    this.live.add(connection);
    try {
      await connection.start();
    } catch (err) {
      this.live.delete(connection);
      await connection.close().catch(() => undefined);
      throw err;
    }
    let released = false;
    return {
      connection,
      release: () => {
        if (released) return;
        released = true;
        this.live.delete(connection);
        const closed = connection
          .close()
          .catch((err: Error) => this.log.warn(`closing ${replica.id}: ${err.message}`))
          .finally(() => this.closing.delete(closed));
        this.closing.add(closed);
      },
    };
  }

  stats(): { open: number } {
    return { open: this.live.size };
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled([...[...this.live].map((c) => c.close()), ...this.closing]);
    this.live.clear();
  }
}
