import type { IncomingHttpHeaders } from 'node:http';
import { HashRing } from '../../libs/hash-ring/src';
import type { ResolvedReplica, RoutingConfig, ServiceConfig } from '../config/gateway-config';
import { ReplicaStates, type ReplicaState } from './replica-states';

export class UnknownServiceError extends Error {
  constructor(readonly service: string) {
    super(`unknown service "${service}"`);
  }
}

export class UnknownReplicaError extends Error {
  constructor(
    readonly service: string,
    readonly replicaId: string,
  ) {
    super(`service "${service}" has no replica "${replicaId}"`);
  }
}

export class DuplicateReplicaError extends Error {
  constructor(
    readonly replicaId: string,
    readonly owner: string,
  ) {
    super(`replica id "${replicaId}" is already used in service "${owner}"`);
  }
}

/** What a session offers the router to choose its key from, when it is created. */
export interface RoutingInput {
  /** The client's id (anonymous clients: one per session). */
  clientId: string;
  sessionId: string;
  /** The request that created the session; read once, never kept. */
  headers?: IncomingHttpHeaders;
}

/** One replica as the admin API and the dashboard show it (no headers or env: they hold secrets). */
export interface ReplicaView {
  id: string;
  transport: ResolvedReplica['transport'];
  target: string;
  weight: number;
  state: ReplicaState;
  draining: boolean;
  healthy: boolean;
  /** Sessions placed on the replica and still open. */
  sessions: number;
}

export interface ServiceView {
  name: string;
  mode: ServiceConfig['mode'];
  routing: RoutingConfig;
  replicas: ReplicaView[];
}

/** A session's place on a replica: `release()` when the session's upstream closes. */
export interface Placement {
  release(): void;
}

/** A replica in its service; a new entry per (re)addition, so stale placements cannot release a newcomer. */
class ReplicaEntry {
  constructor(public config: ResolvedReplica) {}
}

/** A service's settings below routing (mode, pool sizing, breakers), as the pool layer reads them. */
export type ServiceSettings = Pick<ServiceConfig, 'mode' | 'pool' | 'breaker' | 'drainGraceMs'>;

class ServiceRoute {
  readonly ring = new HashRing();
  readonly replicas = new Map<string, ReplicaEntry>();
  constructor(
    readonly name: string,
    public mode: ServiceConfig['mode'],
    public routing: RoutingConfig,
    public settings: ServiceSettings,
  ) {}
}

/** Fields of a live replica change (admin PATCH). */
export interface ReplicaPatch {
  weight?: number;
  draining?: boolean;
}

const NOT_PLACED: Placement = { release: () => undefined };

/** Keeps float error in c × m × w / W from lifting an exact integer bound by one. */
const BOUND_EPSILON = 1e-9;

/**
 * Services, their replicas and one hash ring per service. Every change (file edit, admin call) is
 * applied to the ring incrementally — add, remove, setWeight — so a reweight moves only the keys
 * it must and the loads counted on the other replicas stay.
 */
export class RoutingTable {
  readonly states: ReplicaStates;
  private readonly services = new Map<string, ServiceRoute>();
  /** Replica id → service, for the uniqueness of ids across services. */
  private readonly owners = new Map<string, string>();
  private defaultName: string;

  constructor(services: Record<string, ServiceConfig>, defaultService: string, states = new ReplicaStates()) {
    this.states = states;
    this.defaultName = defaultService;
    for (const [name, service] of Object.entries(services)) this.addService(name, service);
  }

  get defaultService(): string {
    return this.defaultName;
  }

  set defaultService(name: string) {
    if (!this.services.has(name)) throw new UnknownServiceError(name);
    this.defaultName = name;
  }

  hasService(service: string): boolean {
    return this.services.has(service);
  }

  serviceNames(): string[] {
    return [...this.services.keys()];
  }

  /** The key the service's routing asks for: client id (default), session id, or a header. */
  keyFor(service: string, input: RoutingInput): string {
    const routing = this.services.get(service)?.routing;
    if (!routing || routing.key === 'client_id') return input.clientId;
    if (routing.key === 'session') return input.sessionId;
    const value = input.headers?.[routing.header!];
    const text = Array.isArray(value) ? value.join(',') : value;
    // No header: the client id still keeps one client's sessions together.
    return text ? `${routing.header}:${text}` : input.clientId;
  }

  /**
   * The replicas a new session with this key may use, in failover order: primary first, then the
   * ring's successors. Draining and unhealthy replicas are left out. With bounded loads the primary
   * is the first replica in ring order whose live sessions are below its cap (Mirrokni, Thorup and
   * Zadimoghaddam); the others keep their ring order.
   */
  pick(service: string, key: string): ResolvedReplica[] {
    const route = this.services.get(service);
    if (!route) throw new UnknownServiceError(service);
    const ids = route.ring.pick(key, route.replicas.size, this.skipInactive);
    if (route.routing.boundedLoads !== false && ids.length > 1) {
      const first = this.boundedChoice(route, ids, route.routing.boundedLoads.factor);
      if (first > 0) ids.unshift(ids.splice(first, 1)[0]);
    }
    const out: ResolvedReplica[] = new Array(ids.length);
    for (let i = 0; i < ids.length; i++) out[i] = route.replicas.get(ids[i])!.config;
    return out;
  }

  /**
   * Counts a session on the replica its upstream opened on (the ring's loads drive bounded loads
   * and the admin view's session counts); release the placement when that upstream closes.
   */
  place(service: string, key: string, replicaId: string): Placement {
    const route = this.services.get(service);
    const entry = route?.replicas.get(replicaId);
    // Removed while its upstream was starting: the session keeps it, there is nothing to count.
    if (!route || !entry) return NOT_PLACED;
    // The ring counts an assignment for the replica `acquire` lands on: with every other replica
    // skipped, that is this one, reached by the same walk from the key that picked it.
    route.ring.acquire(key, (id) => id !== replicaId);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        // A replica removed (or removed and added again) meanwhile has dropped this load already.
        if (route.replicas.get(replicaId) === entry && this.services.get(service) === route) {
          route.ring.release(replicaId);
        }
      },
    };
  }

  // ---------------------------------------------------------------- live changes

  addService(name: string, service: ServiceConfig): void {
    if (this.services.has(name)) throw new Error(`service "${name}" already exists`);
    for (const r of service.replicas) {
      const owner = this.owners.get(r.id);
      if (owner !== undefined) throw new DuplicateReplicaError(r.id, owner);
    }
    const route = new ServiceRoute(name, service.mode, service.routing, settingsOf(service));
    this.services.set(name, route);
    for (const replica of service.replicas) this.addReplica(name, replica);
    this.settingsChanged?.(name);
  }

  /** Removes a service: new sessions for it are refused; open sessions keep their upstreams. */
  removeService(name: string): void {
    const route = this.services.get(name);
    if (!route) throw new UnknownServiceError(name);
    for (const id of [...route.replicas.keys()]) this.removeReplica(name, id);
    this.services.delete(name);
  }

  /**
   * Changes a live service's routing and (when given) its mode, pool and breaker settings:
   * new sessions use them; the pool layer is told through `settingsChanged` (pool resize).
   */
  updateService(
    name: string,
    settings: { mode: ServiceConfig['mode']; routing: RoutingConfig } & Partial<ServiceSettings>,
  ): void {
    const route = this.services.get(name);
    if (!route) throw new UnknownServiceError(name);
    route.mode = settings.mode;
    route.routing = settings.routing;
    route.settings = {
      mode: settings.mode,
      pool: 'pool' in settings ? settings.pool : route.settings.pool,
      breaker: 'breaker' in settings ? settings.breaker : route.settings.breaker,
      drainGraceMs: 'drainGraceMs' in settings ? settings.drainGraceMs : route.settings.drainGraceMs,
    };
    this.settingsChanged?.(name);
  }

  /** Mode, pool and breaker settings of a live service (undefined: no such service). */
  serviceSettings(name: string): ServiceSettings | undefined {
    return this.services.get(name)?.settings;
  }

  /** Told after a service was added or its settings changed (the pool layer listens). */
  settingsChanged: ((service: string) => void) | undefined = undefined;

  addReplica(service: string, replica: ResolvedReplica): void {
    const route = this.services.get(service);
    if (!route) throw new UnknownServiceError(service);
    const owner = this.owners.get(replica.id);
    if (owner !== undefined) throw new DuplicateReplicaError(replica.id, owner);
    this.owners.set(replica.id, service);
    route.replicas.set(replica.id, new ReplicaEntry(replica));
    route.ring.add(replica.id, replica.weight);
    this.states.setDraining(replica.id, replica.draining === true);
  }

  /** The replica takes no new sessions; the sessions it serves move at their next request (their port). */
  removeReplica(service: string, replicaId: string): void {
    const route = this.services.get(service);
    const entry = route?.replicas.get(replicaId);
    if (!route || !entry) throw new UnknownReplicaError(service, replicaId);
    route.replicas.delete(replicaId);
    route.ring.remove(replicaId);
    this.owners.delete(replicaId);
    this.states.forget(replicaId);
  }

  /** Reweights and/or drains a replica in place. */
  updateReplica(service: string, replicaId: string, patch: ReplicaPatch): ResolvedReplica {
    const entry = this.entry(service, replicaId);
    const route = this.services.get(service)!;
    const next: ResolvedReplica = { ...entry.config };
    if (patch.weight !== undefined && patch.weight !== entry.config.weight) {
      route.ring.setWeight(replicaId, patch.weight);
      next.weight = patch.weight;
    }
    if (patch.draining !== undefined) {
      next.draining = patch.draining;
      this.states.setDraining(replicaId, patch.draining);
    }
    entry.config = next;
    return next;
  }

  /**
   * Replaces a replica's definition under the same id (a new URL, headers, command): its ring
   * position stays; new sessions connect with the new definition, open ones keep theirs.
   */
  replaceReplica(service: string, replica: ResolvedReplica): void {
    const entry = this.entry(service, replica.id);
    this.updateReplica(service, replica.id, { weight: replica.weight, draining: replica.draining === true });
    entry.config = replica;
  }

  replicaIds(service: string): string[] {
    const route = this.services.get(service);
    if (!route) throw new UnknownServiceError(service);
    return [...route.replicas.keys()];
  }

  replica(service: string, replicaId: string): ResolvedReplica {
    return this.entry(service, replicaId).config;
  }

  /** Which service a replica id belongs to, if any. */
  ownerOf(replicaId: string): string | undefined {
    return this.owners.get(replicaId);
  }

  view(): ServiceView[] {
    return [...this.services.values()].map((route) => ({
      name: route.name,
      mode: route.mode,
      routing: route.routing,
      replicas: [...route.replicas.values()].map(({ config }) => ({
        id: config.id,
        transport: config.transport,
        target: targetOf(config),
        weight: config.weight,
        state: this.states.state(config.id),
        draining: this.states.isDraining(config.id),
        healthy: this.states.isHealthy(config.id),
        sessions: route.ring.load(config.id),
      })),
    }));
  }

  // ---------------------------------------------------------------- internals

  private readonly skipInactive = (id: string): boolean => !this.states.isActive(id);

  private entry(service: string, replicaId: string): ReplicaEntry {
    const route = this.services.get(service);
    if (!route) throw new UnknownServiceError(service);
    const entry = route.replicas.get(replicaId);
    if (!entry) throw new UnknownReplicaError(service, replicaId);
    return entry;
  }

  /**
   * Index in `ids` (ring order, active replicas only) of the first replica under its cap
   * ceil(c × (m + 1) × w / W), m the live sessions of the active replicas; when every one is at
   * its cap, the one with the fewest sessions per weight.
   */
  private boundedChoice(route: ServiceRoute, ids: string[], factor: number): number {
    let live = 0;
    let weight = 0;
    for (const id of ids) {
      live += route.ring.load(id);
      weight += route.replicas.get(id)!.config.weight;
    }
    let best = 0;
    let bestRatio = Infinity;
    for (let i = 0; i < ids.length; i++) {
      const w = route.replicas.get(ids[i])!.config.weight;
      const load = route.ring.load(ids[i]);
      if (load < Math.ceil((factor * (live + 1) * w) / weight - BOUND_EPSILON)) return i;
      const ratio = (load + 1) / w;
      if (ratio < bestRatio) {
        bestRatio = ratio;
        best = i;
      }
    }
    return best;
  }
}

function settingsOf(service: ServiceConfig): ServiceSettings {
  return {
    mode: service.mode,
    pool: service.pool,
    breaker: service.breaker,
    drainGraceMs: service.drainGraceMs,
  };
}

/** Where a replica is, for display: its URL, its command line, or the embedded server's name. */
function targetOf(replica: ResolvedReplica): string {
  if ('url' in replica) return replica.url;
  switch (replica.transport) {
    case 'stdio':
      return [replica.command, ...replica.args].join(' ');
    case 'embedded':
      return `embedded:${replica.server}`;
    default:
      return (replica as { transport: string }).transport;
  }
}
