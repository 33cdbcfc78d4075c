/**
 * Reconnect delays: exponential growth capped at a maximum, with jitter so that many
 * clients dropped by the same event (a gateway restart, a network blip) do not all come
 * back in the same millisecond.
 */
export interface BackoffOptions {
  /** Delay before the first attempt, before jitter (ms). */
  minDelayMs: number;
  /** Largest delay, before jitter (ms). */
  maxDelayMs: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /**
   * Share of the delay that is random, 0…1 (default 0.5): the delay lies in
   * [base × (1 − jitter), base]. 0.5 ("equal jitter") keeps a floor, so a client never
   * hammers the gateway in a tight loop, while still spreading a crowd over half the window.
   */
  jitter?: number;
}

/**
 * The delay before reconnect attempt `attempt` (1 = first). `random` is injectable so tests
 * can pin the jitter.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const min = Math.max(0, options.minDelayMs);
  const max = Math.max(min, options.maxDelayMs);
  const factor = options.factor ?? 2;
  const jitter = clamp(options.jitter ?? 0.5, 0, 1);
  const n = Math.max(1, Math.floor(attempt));
  // Math.pow overflows to Infinity for large n; the cap keeps the result finite.
  const base = Math.min(max, min * Math.pow(factor, n - 1));
  const r = clamp(random(), 0, 1);
  return Math.round(base * (1 - jitter * r));
}

function clamp(value: number, lo: number, hi: number): number {
  return Number.isNaN(value) ? lo : Math.min(hi, Math.max(lo, value));
}
