import type { ResolvedReplica } from '../config/gateway-config';
import type { UpstreamConnection } from '../upstream/upstream-connection';
import { onBackgroundFailure } from './background-failures';

const onWarmStartFailure = onBackgroundFailure('warm-stdio.start');
const onWarmCloseFailure = onBackgroundFailure('warm-stdio.close');

interface WarmSet {
  /** The replica configuration the children were spawned from (a changed replica gets new ones). */
  replica: ResolvedReplica;
  ready: UpstreamConnection[];
  /** Spawns under way. */
  starting: number;
}

/**
 * Dedicated mode over stdio: a few children spawned ahead per replica, so a new session is handed
 * a process that is already running (a Node MCP server takes about a second to start) instead
 * of waiting for a spawn. Each warm child serves exactly one session — it has seen no message
 * yet, so the client's own initialize is the first thing it reads — and is replaced in the
 * background as soon as it is taken.
 */
export class WarmStdio {
  private readonly sets = new Map<string, WarmSet>();
  private stopped = false;

  constructor(
    /** Children kept ready per replica (0: off). */
    private readonly count: number,
    private readonly create: (replica: ResolvedReplica) => UpstreamConnection,
    private readonly warn: (message: string) => void,
  ) {}

  /** A running child for a new session of `replica`, if one is ready; starts its replacement. */
  take(replica: ResolvedReplica): UpstreamConnection | undefined {
    if (this.count === 0 || replica.transport !== 'stdio') return undefined;
    const set = this.setFor(replica);
    let taken: UpstreamConnection | undefined;
    while (!taken && set.ready.length > 0) {
      const next = set.ready.shift()!;
      // One that died while it waited (and is restarting, or gave up) is not warm any more.
      if (next.healthy()) taken = next;
      else next.close().catch(onWarmCloseFailure);
    }
    this.fill(replica);
    return taken;
  }

  /** Spawns children until `count` are ready or starting (a no-op for non-stdio replicas). */
  fill(replica: ResolvedReplica): void {
    if (this.count === 0 || this.stopped || replica.transport !== 'stdio') return;
    const set = this.setFor(replica);
    while (set.ready.length + set.starting < this.count) {
      set.starting++;
      const connection = this.create(replica);
      connection
        .start()
        .then(
          () => {
            set.starting--;
            if (this.stopped || this.sets.get(replica.id) !== set)
              connection.close().catch(onWarmCloseFailure);
            else set.ready.push(connection);
          },
          (err: Error) => {
            set.starting--;
            // Not retried here (no spawn loop for a broken command): the next take tries again.
            this.warn(`warm process for ${replica.id} failed to start: ${err.message}`);
            connection.close().catch(onWarmCloseFailure);
          },
        )
        .catch(onWarmStartFailure);
    }
  }

  /** Children ready now per replica id (tests, stats). */
  readyCount(replicaId: string): number {
    return this.sets.get(replicaId)?.ready.length ?? 0;
  }

  /** Ends the warm children of a replica that was removed or changed. */
  drop(replicaId: string): Promise<void> {
    const set = this.sets.get(replicaId);
    this.sets.delete(replicaId);
    return closeAll(set?.ready ?? []);
  }

  stop(): Promise<void> {
    this.stopped = true;
    const all = [...this.sets.values()].flatMap((s) => s.ready);
    this.sets.clear();
    return closeAll(all);
  }

  private setFor(replica: ResolvedReplica): WarmSet {
    let set = this.sets.get(replica.id);
    if (set && set.replica !== replica) {
      // The replica was replaced (new command or env): its old children must not serve.
      void this.drop(replica.id);
      set = undefined;
    }
    if (!set) {
      set = { replica, ready: [], starting: 0 };
      this.sets.set(replica.id, set);
    }
    return set;
  }
}

async function closeAll(connections: UpstreamConnection[]): Promise<void> {
  await Promise.allSettled(connections.map((c) => c.close()));
}
