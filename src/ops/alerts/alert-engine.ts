import type { StatsHistory } from '../stats/stats-sampler.service';
import type { AlertName, AlertRule, AlertSeverity } from './alert-rules';

export interface ActiveAlert {
  name: AlertName;
  severity: AlertSeverity;
  summary: string;
  threshold: number;
  value: number | undefined;
  subject?: string;
  /** Epoch ms it was raised. */
  since: number;
}

export interface AlertEvent extends ActiveAlert {
  type: 'raised' | 'cleared';
  /** Epoch ms of the evaluation that raised or cleared it. */
  at: number;
}

interface RuleState {
  /** When the current breach began (undefined: not breached). */
  breachedSince: number | undefined;
  active: ActiveAlert | undefined;
}

/**
 * Raises and clears alerts as the rules' readings cross their thresholds. Driven by whoever calls
 * `evaluate(history, now)` — the sampler each second, a test with its own clock — so nothing here
 * keeps time by itself.
 */
export class AlertEngine {
  private readonly states = new Map<AlertName, RuleState>();

  constructor(private readonly rules: readonly AlertRule[]) {
    for (const rule of rules) this.states.set(rule.name, { breachedSince: undefined, active: undefined });
  }

  evaluate(history: StatsHistory, now: number): AlertEvent[] {
    const events: AlertEvent[] = [];
    for (const rule of this.rules) {
      const state = this.states.get(rule.name)!;
      const reading = rule.read(history);
      if (!reading.breached) {
        state.breachedSince = undefined;
        if (state.active) {
          events.push({ ...state.active, value: reading.value, type: 'cleared', at: now });
          state.active = undefined;
        }
        continue;
      }
      state.breachedSince ??= now;
      if (state.active) {
        state.active.value = reading.value;
        state.active.subject = reading.subject;
      } else if (now - state.breachedSince >= rule.forMs) {
        state.active = {
          name: rule.name,
          severity: rule.severity,
          summary: rule.summary,
          threshold: rule.threshold,
          value: reading.value,
          subject: reading.subject,
          since: now,
        };
        events.push({ ...state.active, type: 'raised', at: now });
      }
    }
    return events;
  }

  active(): ActiveAlert[] {
    const out: ActiveAlert[] = [];
    for (const s of this.states.values()) if (s.active) out.push({ ...s.active });
    return out;
  }
}
