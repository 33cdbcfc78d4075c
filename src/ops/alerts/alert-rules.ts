import type { GatewayConfig } from '../../config/gateway-config';
import type { StatsHistory } from '../stats/stats-sampler.service';
import { poolUtilisation } from '../stats/stats-sample';

/**
 * The task's alert thresholds, evaluated in-process on the stats history. The same rules ship for
 * Prometheus in docker/prometheus/alerts.yml (same names, thresholds and windows by default).
 */
export type AlertName =
  'PoolExhaustion' | 'HighErrorRate' | 'TransportFailovers' | 'LatencyP99High' | 'MemoryPressure';

/** Critical alerts also go up the algedonic channel (pain on raise, pleasure on clear). */
export type AlertSeverity = 'critical' | 'warning';

export interface AlertReading {
  breached: boolean;
  /** The figure compared (undefined when there is nothing to judge, e.g. no traffic). */
  value: number | undefined;
  /** Where it happened (a replica id), when the rule looks at several. */
  subject?: string;
}

export interface AlertRule {
  name: AlertName;
  severity: AlertSeverity;
  threshold: number;
  /** How long the breach must last before the alert is raised (0: at the first breached sample). */
  forMs: number;
  summary: string;
  read(history: StatsHistory): AlertReading;
}

export type AlertSettings = GatewayConfig['alerts'];

export function alertRules(s: AlertSettings): AlertRule[] {
  const windowS = Math.round(s.windowMs / 1000);
  return [
    {
      name: 'PoolExhaustion',
      severity: 'critical',
      threshold: s.poolUtilisation,
      forMs: 0,
      summary: `a connection pool is more than ${pct(s.poolUtilisation)} used`,
      read(h) {
        let value: number | undefined;
        let subject: string | undefined;
        for (const p of h.latest?.pools ?? []) {
          const u = poolUtilisation(p);
          if (value === undefined || u > value) {
            value = u;
            subject = p.replica;
          }
        }
        return { breached: value !== undefined && value > s.poolUtilisation, value, subject };
      },
    },
    {
      name: 'HighErrorRate',
      severity: 'critical',
      threshold: s.errorRate,
      forMs: 0,
      summary: `more than ${pct(s.errorRate)} of client messages failed over ${windowS}s`,
      read(h) {
        const w = h.window(s.windowMs);
        if (!w || w.messagesIn < s.errorRateMinMessages) return { breached: false, value: w?.errorRate };
        const value = w.errorRate ?? 0;
        return { breached: value > s.errorRate, value };
      },
    },
    {
      name: 'TransportFailovers',
      severity: 'warning',
      threshold: s.failovers,
      forMs: 0,
      summary: `more than ${s.failovers} transport failovers in ${windowS}s`,
      read(h) {
        const value = h.window(s.windowMs)?.transportFailovers ?? 0;
        return { breached: value > s.failovers, value };
      },
    },
    {
      name: 'LatencyP99High',
      severity: 'warning',
      threshold: s.p99Ms,
      forMs: 0,
      summary: `p99 request latency above ${s.p99Ms} ms over ${windowS}s`,
      read(h) {
        const value = h.window(s.windowMs)?.quantile(0.99);
        return { breached: value !== undefined && value > s.p99Ms, value };
      },
    },
    {
      name: 'MemoryPressure',
      severity: 'critical',
      threshold: s.heapUsed,
      forMs: s.heapForMs,
      summary: `V8 heap more than ${pct(s.heapUsed)} of its limit used`,
      read(h) {
        // Against the limit the heap may grow to, not its current size: V8 sizes the heap to what
        // is used, so used ÷ total sits near 1 in an idle gateway and says nothing about pressure.
        const heap = h.latest?.heap;
        const value = heap && heap.limit > 0 ? heap.used / heap.limit : undefined;
        return { breached: value !== undefined && value > s.heapUsed, value };
      },
    },
  ];
}

function pct(share: number): string {
  return `${Math.round(share * 1000) / 10} %`;
}
