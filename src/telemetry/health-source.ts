import { DiscoveryService } from '@nestjs/core';

/** The probes /health answers: `health` (counts, always up), `live` (the process) and `ready`. */
export type HealthProbe = 'health' | 'live' | 'ready';

/** One check's outcome; `details` goes into the probe's report beside its status. */
export interface HealthReport {
  up: boolean;
  details?: Record<string, unknown>;
}

/** One named check on one probe (the name is its key in the report, e.g. `replicas`). */
export interface HealthIndicator {
  name: string;
  probe: HealthProbe;
  check(): HealthReport | Promise<HealthReport>;
}

/**
 * A provider that reports on its own state for the health probes; mark it with
 * {@link HEALTH_SOURCE}. `shuttingDown` says the feature has started shutting its work down: the
 * gateway is then not ready (the `shutdown` check), whatever the other checks say.
 */
export interface HealthSource {
  healthIndicators?(): readonly HealthIndicator[];
  shuttingDown?(): boolean;
}

/**
 * Marks a provider as a {@link HealthSource}. As with GAUGE_SOURCE, the operations layer
 * (ops/health) finds the marked providers with DiscoveryService instead of importing them.
 */
export const HEALTH_SOURCE = DiscoveryService.createDecorator<void>();
