import type { ClientCounters, ClientUsage } from './client-usage';

/**
 * The usage classes S4 reports (`usage_pattern`), judged per window from a client's counters:
 * - `idle`: no request in the window;
 * - `tool_heavy`: at least MIN_REQUESTS requests and the tools/call share at or above S4_TOOL_HEAVY_SHARE;
 * - `bursty`: at least MIN_REQUESTS requests and its busiest second at or above S4_BURST_RATIO × its
 *   mean per second;
 * - `steady`: anything else with traffic.
 */
export type UsagePattern = 'idle' | 'steady' | 'bursty' | 'tool_heavy';

/** Fewer requests than this in a window say too little to call a client bursty or tool-heavy. */
export const MIN_REQUESTS = 5;
/** Idle windows after which a client's counters are dropped (it is reported idle once before). */
const FORGET_AFTER_IDLE_WINDOWS = 6;

export interface PatternSettings {
  burstRatio: number;
  toolHeavyShare: number;
}

export interface WindowUsage {
  requests: number;
  toolCalls: number;
  peakPerSecond: number;
  seconds: number;
}

export function classify(w: WindowUsage, s: PatternSettings): UsagePattern {
  if (w.requests === 0) return 'idle';
  if (w.requests >= MIN_REQUESTS) {
    if (w.toolCalls / w.requests >= s.toolHeavyShare) return 'tool_heavy';
    const mean = w.requests / Math.max(w.seconds, 1);
    if (w.peakPerSecond / mean >= s.burstRatio) return 'bursty';
  }
  return 'steady';
}

/** Closes a window for every client: the clients whose class changed, with their new class. */
export function closeWindow(
  usage: ClientUsage,
  s: PatternSettings,
): Array<{ clientId: string; patternType: UsagePattern }> {
  const changed: Array<{ clientId: string; patternType: UsagePattern }> = [];
  for (const [clientId, c] of usage.clients) {
    const pattern = classify(windowOf(c), s);
    resetWindow(c);
    if (pattern === 'idle') {
      if (++c.idleWindows >= FORGET_AFTER_IDLE_WINDOWS) usage.clients.delete(clientId);
    } else {
      c.idleWindows = 0;
    }
    if (pattern !== c.pattern) {
      c.pattern = pattern;
      changed.push({ clientId, patternType: pattern });
    }
  }
  return changed;
}

function windowOf(c: ClientCounters): WindowUsage {
  return {
    requests: c.requests - c.windowRequests,
    toolCalls: c.toolCalls - c.windowToolCalls,
    peakPerSecond: c.peakPerSecond,
    seconds: c.seconds,
  };
}

function resetWindow(c: ClientCounters): void {
  c.windowRequests = c.requests;
  c.windowToolCalls = c.toolCalls;
  c.lastSecondRequests = c.requests;
  c.peakPerSecond = 0;
  c.seconds = 0;
}

/**
 * A moving baseline (exponentially weighted mean and variance) of one figure; a value more than
 * `sigma` standard deviations — and more than `floor` — above the mean is an anomaly. The first
 * `warmup` values only teach the baseline.
 */
export class Baseline {
  private mean = 0;
  private variance = 0;
  private n = 0;

  constructor(
    private readonly sigma: number,
    private readonly floor: number,
    private readonly alpha = 0.2,
    private readonly warmup = 5,
  ) {}

  /** Adds a value; returns the baseline it left (mean, σ) when it is an anomaly, else undefined. */
  observe(x: number): { mean: number; stdDev: number } | undefined {
    let anomaly: { mean: number; stdDev: number } | undefined;
    const stdDev = Math.sqrt(this.variance);
    if (this.n >= this.warmup && x - this.mean > this.floor && x > this.mean + this.sigma * stdDev) {
      anomaly = { mean: this.mean, stdDev };
    }
    if (this.n === 0) {
      this.mean = x;
    } else {
      const diff = x - this.mean;
      this.mean += this.alpha * diff;
      this.variance = (1 - this.alpha) * (this.variance + this.alpha * diff * diff);
    }
    this.n++;
    return anomaly;
  }
}
