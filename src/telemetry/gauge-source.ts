import { DiscoveryService } from '@nestjs/core';

/** One exposition line: labels and value (prom-client's MetricValue shape). */
export interface Sample {
  metricName?: string;
  labels: Record<string, string | number>;
  value: number;
}

export type GaugeType = 'counter' | 'gauge' | 'histogram';

/**
 * A metric a feature declares about its own state (live sessions, pool sizes, breakers): the
 * exposition calls `read` at each scrape, so the figure is never copied or kept between scrapes.
 */
export interface Gauge {
  name: string;
  help: string;
  type: GaugeType;
  read(out: Sample[]): void;
}

/** A provider that declares gauges; mark it with {@link GAUGE_SOURCE} so /metrics finds it. */
export interface GaugeSource {
  gauges(): readonly Gauge[];
}

/**
 * Marks a provider as a {@link GaugeSource}. The layer that owns a state declares how it is
 * measured; the operations layer (ops/metrics) finds every marked provider with Nest's
 * DiscoveryService and only iterates them, so it needs no import of the layers it reports on.
 */
export const GAUGE_SOURCE = DiscoveryService.createDecorator<void>();

/** A breaker state as a gauge value: 0 closed, 1 half-open, 2 open. */
export const BREAKER_GAUGE_VALUE: Readonly<Record<'closed' | 'half_open' | 'open', number>> = {
  closed: 0,
  half_open: 1,
  open: 2,
};
