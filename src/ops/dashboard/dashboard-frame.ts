import type { ActiveAlert, AlertEvent } from '../alerts/alert-engine';
import type { StatsHistory } from '../stats/stats-sampler.service';
import { poolUtilisation, sumOf, type StatsSample } from '../stats/stats-sample';

/** Latency quantiles on the dashboard are over this window: one second holds too few requests. */
const LATENCY_WINDOW_MS = 10_000;
/** The error-rate figure matches the alert's one-minute window. */
const ERROR_WINDOW_MS = 60_000;

const per = (n: number, s: number) => (s > 0 ? n / s : 0);

/** What /dashboard/stream sends once per sample: figures ready to plot, no client-side arithmetic. */
export function dashboardFrame(
  sample: StatsSample,
  history: StatsHistory,
  alerts: ActiveAlert[],
  recentAlerts: readonly AlertEvent[],
) {
  const all = history.all();
  const previous = all.length > 1 ? all[all.length - 2] : sample;
  const dt = (sample.t - previous.t) / 1000;
  const rates = (pick: (s: StatsSample) => Record<string, number>) => {
    const now = pick(sample);
    const before = pick(previous);
    const out: Record<string, number> = {};
    for (const k in now) out[k] = per(now[k] - (before[k] ?? 0), dt);
    return out;
  };
  const latency = history.window(LATENCY_WINDOW_MS)!;
  const errorWindow = history.window(ERROR_WINDOW_MS)!;
  return {
    t: sample.t,
    connections: sample.connections,
    sessions: sample.sessions,
    messagesInPerSecond: rates((s) => s.messagesIn),
    messagesOutPerSecond: rates((s) => s.messagesOut),
    bytesOutPerSecond: per(sumOf(sample.bytesOut) - sumOf(previous.bytesOut), dt),
    messagesTotal: { in: sumOf(sample.messagesIn), out: sumOf(sample.messagesOut) },
    latencyMs: {
      p50: latency.quantile(0.5) ?? null,
      p90: latency.quantile(0.9) ?? null,
      p99: latency.quantile(0.99) ?? null,
      count: latency.latency.count,
    },
    errors: {
      perSecond: per(sample.errors - previous.errors, dt),
      total: sample.errors,
      rate: errorWindow.errorRate ?? 0,
      byKind: sample.errorsByKind,
    },
    transportFailovers: sample.transportFailovers,
    replicaFailovers: sample.replicaFailovers,
    transportBreakers: sample.transportBreakers,
    pools: sample.pools.map((p) => ({
      replica: p.replica,
      size: p.size,
      inUse: p.borrowed,
      available: p.available,
      pending: p.pending,
      max: p.max,
      utilisation: poolUtilisation(p),
    })),
    queueDepth: sample.pools.reduce((n, p) => n + p.pending, 0),
    vsmPerSecond: rates((s) => s.vsm),
    vsmTotal: sample.vsm,
    heap: sample.heap,
    replicas: sample.replicas,
    alerts,
    recentAlerts: recentAlerts.slice(-10),
  };
}

export type DashboardFrame = ReturnType<typeof dashboardFrame>;
