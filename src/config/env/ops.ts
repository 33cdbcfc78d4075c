import { z } from 'zod';
import { bool, int } from '../schema-fields';
import { setting } from './setting';

/** The dashboard, alerts and S4. */
export const OPS_SETTINGS = {
  STATS_SAMPLE_INTERVAL_MS: setting({
    doc: 'How often the stats sampler behind /dashboard, the alerts and S4 takes a sample (ms).',
    schema: int(100),
    default: 1000,
  }),
  STATS_HISTORY_SAMPLES: setting({
    doc: 'Samples kept for the sliding windows (with the default interval: five minutes).',
    schema: int(10, 10_000),
    default: 300,
  }),
  DASHBOARD_OPEN: setting({
    doc: 'Serve /dashboard without ADMIN_TOKEN on a non-loopback bind (off: there it needs the token).',
    schema: bool,
    default: false,
  }),
  ALERT_POOL_UTILISATION: setting({
    doc: "Alert: a pool's in-use share of its maximum above this (0–1).",
    schema: z.coerce.number().min(0).max(1),
    default: 0.9,
  }),
  ALERT_ERROR_RATE: setting({
    doc: 'Alert: errors per client message above this share (0–1) over ALERT_WINDOW_MS.',
    schema: z.coerce.number().min(0).max(1),
    default: 0.05,
  }),
  ALERT_ERROR_RATE_MIN_MESSAGES: setting({
    doc: 'Alert: fewest client messages in the window before the error rate is judged.',
    schema: int(1),
    default: 20,
  }),
  ALERT_FAILOVERS: setting({
    doc: 'Alert: transport failovers within ALERT_WINDOW_MS above this count.',
    schema: int(0),
    default: 10,
  }),
  ALERT_P99_MS: setting({
    doc: 'Alert: p99 request latency over ALERT_WINDOW_MS above this (ms).',
    schema: int(1),
    default: 500,
  }),
  ALERT_HEAP_USED: setting({
    doc:
      "Alert: V8 heap used / the heap's limit (heap_size_limit, set by --max-old-space-size) above " +
      'this (0–1), held for ALERT_HEAP_FOR_MS.',
    schema: z.coerce.number().min(0).max(1),
    default: 0.8,
  }),
  ALERT_HEAP_FOR_MS: setting({
    doc: 'Alert: how long the heap must stay above its threshold before the alert is raised (ms).',
    schema: int(0),
    default: 60_000,
  }),
  ALERT_WINDOW_MS: setting({
    doc: 'Alert: the sliding window of the error-rate, failover and p99 rules (ms).',
    schema: int(1000),
    default: 60_000,
  }),
  S4_INTERVAL_MS: setting({
    doc:
      'S4: how often gateway_metrics is published on s4_intelligence, and the usage-pattern window ' +
      '(ms).',
    schema: int(1000),
    default: 10_000,
  }),
  S4_BURST_RATIO: setting({
    doc: "S4: bursty when a client's busiest second is this many times its mean per second.",
    schema: z.coerce.number().min(1),
    default: 4,
  }),
  S4_TOOL_HEAVY_SHARE: setting({
    doc: "S4: tool-heavy when this share (0–1) of a client's requests are tools/call.",
    schema: z.coerce.number().min(0).max(1),
    default: 0.8,
  }),
  S4_ANOMALY_SIGMA: setting({
    doc: 'S4: an anomaly is a window figure this many standard deviations above its moving average.',
    schema: z.coerce.number().min(0.5),
    default: 3,
  }),
};
