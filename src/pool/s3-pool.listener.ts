import { Injectable, Logger } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { Router } from '../routing/router.service';
import { VsmChannel, type S3Event } from '../vsm/vsm.channels';
import { PoolManager } from './pool-manager.service';

/** Upstream transport kinds: allocate_connections for one of these resizes the replica pools using it. */
const UPSTREAM_KINDS = new Set(['stdio', 'streamable-http', 'sse', 'ws', 'embedded']);
/**
 * Bare `streamable`, `sse` and `ws` name the client transports (the session layer's S3 listener);
 * the upstream kinds of the same name are `upstream:sse` and `upstream:ws`.
 */
const CLIENT_KINDS = new Set(['streamable', 'sse', 'ws']);
const UPSTREAM_PREFIX = 'upstream:';

/** The upstream kind or replica target an S3 command names, or undefined when it names a client transport. */
function upstreamTarget(name: string): string | undefined {
  if (name.startsWith(UPSTREAM_PREFIX)) return name.slice(UPSTREAM_PREFIX.length);
  return CLIENT_KINDS.has(name) ? undefined : name;
}

/**
 * S3 (control) commands that act on upstreams: `force_circuit_state` pins or releases the
 * breakers of the replicas it names; `allocate_connections` for an upstream transport kind
 * resizes the pools of the replicas that use it. A deployment adds its own S3 logic by listening on the
 * same channel; this one only obeys.
 */
@Injectable()
export class S3PoolListener {
  private readonly log = new Logger('S3');

  constructor(
    private readonly pool: PoolManager,
    private readonly router: Router,
  ) {}

  @OnEvent(VsmChannel.S3Control)
  handle(event: S3Event): void {
    if (event.type === 'allocate_connections') {
      const kind = upstreamTarget(event.transport);
      if (kind !== undefined && UPSTREAM_KINDS.has(kind)) {
        const n = this.pool.resizePools(kind, event.count);
        this.log.log(`allocate_connections ${event.transport} → ${event.count} (${n} pools resized)`);
      }
      return;
    }
    if (event.type !== 'force_circuit_state') return;
    const target = upstreamTarget(event.transport);
    if (target === undefined) return;
    const targets = this.replicasNamed(target);
    const state = event.state === 'half_open' ? 'auto' : event.state;
    for (const id of targets) {
      this.pool.breakers.ensure(id, this.pool.breakerSettingsFor(id));
      this.pool.breakers.force(id, state);
    }
    this.log.log(`force_circuit_state ${event.transport} → ${event.state} (${targets.length} replicas)`);
  }

  /** Replica ids a target names: one replica, a service's replicas, or every replica of an upstream transport. */
  private replicasNamed(target: string): string[] {
    const ids: string[] = [];
    for (const service of this.router.serviceNames()) {
      for (const id of this.router.replicaIds(service)) {
        const replica = this.router.replica(service, id);
        if (id === target || service === target || replica.transport === target) ids.push(id);
      }
    }
    return ids;
  }
}
