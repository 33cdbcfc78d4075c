import { readdirSync, readFileSync } from 'node:fs';
import { AdmissionRefusedError } from '../core/refusal';

/** How long a client refused for capacity is told to wait: descriptors free up as sessions end. */
export const CAPACITY_RETRY_AFTER_MS = 5000;

/**
 * Descriptors a new session may cost before the next count sees them: the client's socket and,
 * in dedicated mode, a stdio child's three pipes (the costliest upstream). Sessions admitted
 * between two counts are charged this much each, so a burst cannot overshoot the limit.
 */
const FDS_PER_NEW_SESSION = 4;

/** Counting /proc/self/fd costs a directory read of every descriptor: at most this often. */
const SAMPLE_INTERVAL_MS = 250;

// Where the session layer's refusals (capacity, a transport's breaker) come from: the one refusal type.
export { AdmissionRefusedError };

/** Refused: one more session would bring the process too close to its descriptor limit. */
export class SessionCapacityError extends AdmissionRefusedError {
  readonly code = 'session_capacity';

  constructor(
    readonly open: number,
    readonly limit: number,
  ) {
    super(
      'Service unavailable: the gateway is at its session capacity (file descriptors); retry later',
      CAPACITY_RETRY_AFTER_MS,
    );
    this.name = 'SessionCapacityError';
  }
}

export interface DescriptorBudgetOptions {
  /** The limit to work against; undefined: the soft RLIMIT_NOFILE of this process. */
  limit?: number;
  /** Part of the limit kept free for what sessions already held need (upstream reconnects, logs…). */
  headroomPercent?: number;
  /** Open descriptors now (tests); defaults to counting /proc/self/fd. */
  countOpen?: () => number;
}

/**
 * Keeps the gateway from admitting a session it would not have the descriptors for: a new
 * session is refused once open descriptors plus the headroom reach the limit, so that the
 * sessions already held keep working (their reconnects and upstream restarts need descriptors
 * too). Where /proc is missing (not Linux) and no limit is configured, everything is admitted.
 */
export class DescriptorBudget {
  readonly limit: number | undefined;
  readonly reserve: number;
  private readonly countOpen: () => number;
  private open = 0;
  private sampledAt = Number.NEGATIVE_INFINITY;
  /** Sessions admitted since the last count. */
  private since = 0;

  constructor(options: DescriptorBudgetOptions = {}) {
    this.countOpen = options.countOpen ?? countOpenDescriptors;
    this.limit = options.limit ?? softDescriptorLimit();
    const percent = options.headroomPercent ?? 10;
    this.reserve = this.limit === undefined ? 0 : Math.ceil((this.limit * percent) / 100);
  }

  /** Throws SessionCapacityError when one more session does not fit. Does not take the place. */
  check(now = Date.now()): void {
    if (this.limit === undefined) return;
    if (now - this.sampledAt >= SAMPLE_INTERVAL_MS) {
      const open = this.countOpen();
      if (open < 0) return; // cannot count here
      this.open = open;
      this.sampledAt = now;
      this.since = 0;
    }
    const expected = this.open + this.since * FDS_PER_NEW_SESSION;
    if (expected + this.reserve >= this.limit) throw new SessionCapacityError(expected, this.limit);
  }

  /** A session was created: charge it until the next count sees what it really holds. */
  taken(): void {
    this.since++;
  }
}

/** Open descriptors of this process, or −1 where /proc/self/fd cannot be read. */
export function countOpenDescriptors(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return -1;
  }
}

/** The soft "Max open files" of this process from /proc/self/limits (undefined: unknown or unlimited). */
export function softDescriptorLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    const n = Number(soft);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
