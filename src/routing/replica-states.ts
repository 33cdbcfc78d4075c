/** Why a replica takes no new sessions, or 'active' when it does. */
export type ReplicaState = 'active' | 'draining' | 'unhealthy';

type StateListener = (replicaId: string, state: ReplicaState) => void;

/**
 * The live state of each replica, by replica id (ids are unique across services). Operators drain
 * (gateway.yaml, admin API); health checks and circuit breakers mark replicas unhealthy. The
 * router skips every replica that is not active when it picks replicas for a new session.
 */
export class ReplicaStates {
  private readonly draining = new Set<string>();
  private readonly unhealthy = new Set<string>();
  private readonly listeners: StateListener[] = [];

  /**
   * A draining replica takes no new sessions. Its open sessions (dedicated mode) move to the next
   * replica of their failover order at their next request: their port replays the handshake there.
   */
  setDraining(replicaId: string, draining: boolean): void {
    const before = this.state(replicaId);
    if (draining) this.draining.add(replicaId);
    else this.draining.delete(replicaId);
    this.changed(replicaId, before);
  }

  setHealthy(replicaId: string, healthy: boolean): void {
    const before = this.state(replicaId);
    if (healthy) this.unhealthy.delete(replicaId);
    else this.unhealthy.add(replicaId);
    this.changed(replicaId, before);
  }

  isDraining(replicaId: string): boolean {
    return this.draining.has(replicaId);
  }

  isHealthy(replicaId: string): boolean {
    return !this.unhealthy.has(replicaId);
  }

  /** Whether new sessions may be placed on the replica. */
  isActive(replicaId: string): boolean {
    return !this.draining.has(replicaId) && !this.unhealthy.has(replicaId);
  }

  /** Draining wins over unhealthy: it is the operator's decision and outlives a recovery. */
  state(replicaId: string): ReplicaState {
    if (this.draining.has(replicaId)) return 'draining';
    if (this.unhealthy.has(replicaId)) return 'unhealthy';
    return 'active';
  }

  /** Called on every change of a replica's state (not on repeated settings of the same state). */
  onChange(listener: StateListener): void {
    this.listeners.push(listener);
  }

  /** Forgets a replica that left the configuration. */
  forget(replicaId: string): void {
    this.draining.delete(replicaId);
    this.unhealthy.delete(replicaId);
  }

  private changed(replicaId: string, before: ReplicaState): void {
    const after = this.state(replicaId);
    if (after === before) return;
    for (const listener of this.listeners) listener(replicaId, after);
  }
}
