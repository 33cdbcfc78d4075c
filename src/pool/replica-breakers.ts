import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import type { BreakerEpisodeListener } from '../vsm/algedonic-breaker.listener';

/** Breaker thresholds for the replicas of one service (gateway.yaml `breaker:`). */
export interface BreakerSettings {
  /** Failure percentage within the rolling window that opens the breaker. */
  errorThresholdPercentage: number;
  /** Outcomes needed in the window before the percentage counts (a single early failure never opens). */
  volumeThreshold: number;
  /** How long an open breaker fails fast before it lets a probe through (half-open). */
  resetTimeoutMs: number;
  /** Length of the rolling statistics window. */
  rollingWindowMs: number;
}

export const DEFAULT_BREAKER_SETTINGS: BreakerSettings = {
  errorThresholdPercentage: 50,
  volumeThreshold: 5,
  resetTimeoutMs: 10_000,
  rollingWindowMs: 10_000,
};

export type BreakerState = 'closed' | 'open' | 'half_open';
/** A forced state from S3 `force_circuit_state`; `auto` hands control back to the statistics. */
export type ForcedBreakerState = BreakerState | 'auto';

/** Failures in a row that count as an episode even before the breaker opens (the seed's "3 consecutive failures"). */
export const CONSECUTIVE_FAILURES_PAIN = 3;

/**
 * Told once per transition of a breaker-guarded target (a replica or a client transport): it
 * started hurting (breaker opened, or CONSECUTIVE_FAILURES_PAIN failures in a row) and, later,
 * it recovered. Never once per request.
 */
export interface BreakerListener extends BreakerEpisodeListener {
  stateChanged?(target: string, state: BreakerState): void;
}

interface Guard {
  breaker: CircuitBreaker<[boolean], void>;
  consecutiveFailures: number;
  /** Inside a pain episode: the next recovery sends the one pleasure event. */
  hurting: boolean;
  since: number;
  forced: ForcedBreakerState;
  /** Thresholds to take once the breaker is closed again (set by reconfigure). */
  next: BreakerSettings | undefined;
  /**
   * Successes of a closed breaker not yet handed to opossum's current bucket: counting one is an
   * add here. They are handed over (see flush) before opossum reads its statistics — its check on
   * a failure, our pain event — and before its bucket rotates, so every count lands in the bucket
   * it belongs to and the window's numbers are the same as if each had been counted at once.
   */
  successes: number;
  /** Rotates opossum's buckets (its rotateBucketController): our timer flushes, then rotates. */
  rotation: EventEmitter;
  rotator: NodeJS.Timeout | undefined;
}

/** Hands the pending successes to opossum's current bucket. */
function flush(guard: Guard): void {
  const n = guard.successes;
  if (n === 0) return;
  guard.successes = 0;
  // The current bucket, as opossum's Status.increment() writes it (@types/opossum omits the
  // window's shape). No latency samples: rolling percentiles are off.
  const bucket = (guard.breaker.status.window as unknown as Array<{ fires: number; successes: number }>)[0];
  bucket.fires += n;
  bucket.successes += n;
}

function rotate(guard: Guard): void {
  flush(guard);
  guard.rotation.emit('rotate');
}

/** opossum's rolling window is this many buckets of rollingWindowMs / BUCKETS each. */
const BUCKETS = 10;
const RESOLVED: Promise<void> = Promise.resolve();
const FAILED = Object.freeze(new Error('upstream failure'));
const ignore = () => undefined;
/** The breaker's action: turns a recorded outcome into the promise opossum counts. */
function outcome(ok: boolean): Promise<void> {
  return ok ? RESOLVED : Promise.reject(FAILED);
}

/**
 * One opossum breaker per target. Outcomes are recorded as they happen (an answer arrived, a
 * connection failed) instead of wrapping each call, so the hot path creates no closure per
 * request; opossum keeps the rolling statistics and the open → half-open → closed machine.
 */
export class Breakers {
  private readonly guards = new Map<string, Guard>();

  constructor(private readonly listener: BreakerListener) {}

  /** Creates the target's breaker if it has none (settings apply at creation). */
  ensure(target: string, settings: BreakerSettings = DEFAULT_BREAKER_SETTINGS): void {
    if (this.guards.has(target)) return;
    const rotation = new EventEmitter();
    const breaker = new CircuitBreaker<[boolean], void>(outcome, {
      timeout: false,
      errorThresholdPercentage: settings.errorThresholdPercentage,
      volumeThreshold: settings.volumeThreshold,
      resetTimeout: settings.resetTimeoutMs,
      rollingCountTimeout: settings.rollingWindowMs,
      rollingCountBuckets: BUCKETS,
      rollingPercentilesEnabled: false,
      // Nothing listens to the per-bucket snapshots (and they would miss the pending successes).
      enableSnapshots: false,
      rotateBucketController: rotation,
    });
    const guard: Guard = {
      breaker,
      consecutiveFailures: 0,
      hurting: false,
      since: 0,
      forced: 'auto',
      next: undefined,
      successes: 0,
      rotation,
      rotator: undefined,
    };
    // The interval opossum would have run itself (it runs none when given a controller).
    guard.rotator = setInterval(rotate, Math.floor(settings.rollingWindowMs / BUCKETS), guard);
    guard.rotator.unref();
    // opossum checks the window right after it counts a failure (in its 'failure' listener, then
    // in fail()): the successes recorded up to then must be in it.
    breaker.on('failure', () => flush(guard));
    breaker.on('open', () => {
      this.listener.stateChanged?.(target, 'open');
      this.startEpisode(target, guard, 'circuit breaker opened');
    });
    breaker.on('halfOpen', () => this.listener.stateChanged?.(target, 'half_open'));
    breaker.on('close', () => {
      this.listener.stateChanged?.(target, 'closed');
      this.endEpisode(target, guard);
      // Thresholds changed during the episode: applied now that it is over (not inside opossum's emit).
      if (guard.next) setImmediate(() => guard.next && this.reconfigure(target, guard.next));
    });
    this.guards.set(target, guard);
  }

  /** Records one outcome for the target (no-op for an unknown target). */
  record(target: string, ok: boolean): void {
    const guard = this.guards.get(target);
    if (!guard || guard.forced !== 'auto') return;
    if (ok) {
      guard.consecutiveFailures = 0;
      if (guard.breaker.closed) {
        // The common case, once per answer: counted as fire() would count it (a fire and a
        // success), without the promises and events fire() costs (measured: ~15 % of Streamable
        // HTTP throughput), and handed to opossum's window in bulk (see Guard.successes).
        guard.successes++;
      } else {
        guard.breaker.fire(true).catch(ignore); // half-open: the probe that closes it
      }
      if (guard.hurting && guard.breaker.closed) this.endEpisode(target, guard);
      return;
    }
    guard.consecutiveFailures++;
    guard.breaker.fire(false).catch(ignore);
    if (guard.consecutiveFailures >= CONSECUTIVE_FAILURES_PAIN) {
      this.startEpisode(target, guard, `${guard.consecutiveFailures} consecutive failures`);
    }
  }

  /** False while the breaker is open (fail fast); a half-open breaker lets a probe through. */
  allows(target: string): boolean {
    const guard = this.guards.get(target);
    if (!guard) return true;
    if (guard.forced !== 'auto') return guard.forced !== 'open';
    return !guard.breaker.opened;
  }

  state(target: string): BreakerState {
    const guard = this.guards.get(target);
    if (!guard) return 'closed';
    if (guard.forced !== 'auto') return guard.forced;
    if (guard.breaker.opened) return 'open';
    return guard.breaker.halfOpen ? 'half_open' : 'closed';
  }

  /** S3 `force_circuit_state`: pins the state, or (`auto`) returns it to the statistics. */
  force(target: string, state: ForcedBreakerState): void {
    const guard = this.guards.get(target);
    if (!guard) return;
    guard.forced = state;
    if (state === 'open') {
      guard.breaker.open();
    } else if (state === 'closed' || state === 'auto') {
      guard.consecutiveFailures = 0;
      guard.breaker.close();
    }
    this.listener.stateChanged?.(target, this.state(target));
  }

  /**
   * New thresholds for a target (its service changed live). A closed breaker is rebuilt with
   * them at once (its rolling window starts again); an open, half-open or forced one keeps its
   * episode and takes them when it next closes. Unknown targets get them at ensure().
   */
  reconfigure(target: string, settings: BreakerSettings): void {
    const guard = this.guards.get(target);
    if (!guard) return;
    if (guard.breaker.closed && !guard.hurting && guard.forced === 'auto') {
      this.remove(target);
      this.ensure(target, settings);
      return;
    }
    guard.next = settings;
  }

  targets(): string[] {
    return [...this.guards.keys()];
  }

  remove(target: string): void {
    const guard = this.guards.get(target);
    if (!guard) return;
    clearInterval(guard.rotator);
    guard.breaker.shutdown();
    this.guards.delete(target);
  }

  shutdown(): void {
    for (const target of [...this.guards.keys()]) this.remove(target);
  }

  private startEpisode(target: string, guard: Guard, reason: string): void {
    if (guard.hurting) return;
    guard.hurting = true;
    guard.since = Date.now();
    flush(guard);
    const stats = guard.breaker.stats;
    this.listener.hurting(target, reason, {
      state: this.state(target),
      consecutiveFailures: guard.consecutiveFailures,
      failures: stats.failures,
      successes: stats.successes,
    });
  }

  private endEpisode(target: string, guard: Guard): void {
    if (!guard.hurting) return;
    guard.hurting = false;
    this.listener.recovered(target, { downForMs: Date.now() - guard.since, state: this.state(target) });
  }
}
