import CircuitBreaker from 'opossum';

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
export interface BreakerListener {
  hurting(target: string, reason: string, context: Record<string, unknown>): void;
  recovered(target: string, metrics: Record<string, unknown>): void;
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
}

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
    const breaker = new CircuitBreaker<[boolean], void>(outcome, {
      timeout: false,
      errorThresholdPercentage: settings.errorThresholdPercentage,
      volumeThreshold: settings.volumeThreshold,
      resetTimeout: settings.resetTimeoutMs,
      rollingCountTimeout: settings.rollingWindowMs,
      rollingCountBuckets: 10,
      rollingPercentilesEnabled: false,
    });
    const guard: Guard = {
      breaker,
      consecutiveFailures: 0,
      hurting: false,
      since: 0,
      forced: 'auto',
      next: undefined,
    };
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
        // The common case, once per answer: count it in the rolling window as fire() would, without
        // the promises and events fire() costs (measured: ~15 % of Streamable HTTP throughput).
        // opossum's Status has increment() (what its own event listeners call); @types/opossum omits it.
        const status = guard.breaker.status as unknown as { increment(property: string): void };
        status.increment('fires');
        status.increment('successes');
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
