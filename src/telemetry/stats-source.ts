import { DiscoveryService } from '@nestjs/core';
import type { ClientTransport } from '../core/transport-kind';
import type { BREAKER_GAUGE_VALUE } from './gauge-source';

/** A breaker's position as the stats report it. */
export type BreakerPosition = keyof typeof BREAKER_GAUGE_VALUE;

/** One pool of shared upstream sessions (pooled services), as the pool layer counts it. */
export interface PoolFigures {
  replica: string;
  size: number;
  available: number;
  borrowed: number;
  pending: number;
  max: number;
  min: number;
}

/** One upstream replica: its routing state, its breaker and the sessions placed on it. */
export interface ReplicaFigures {
  service: string;
  id: string;
  state: 'active' | 'draining' | 'unhealthy';
  breaker: BreakerPosition;
  sessions: number;
}

/**
 * The parts of a once-a-second stats sample (ops/stats) that a feature fills from its own state;
 * what it leaves out stays empty.
 */
export interface StatsPart {
  connections?: Record<ClientTransport, number>;
  sessions?: Record<ClientTransport, number>;
  transportBreakers?: Record<ClientTransport, BreakerPosition>;
  pools?: PoolFigures[];
  replicas?: ReplicaFigures[];
}

/** A provider that fills part of each stats sample; mark it with {@link STATS_SOURCE}. */
export interface StatsSource {
  statsPart(): StatsPart;
}

/**
 * Marks a provider as a {@link StatsSource}: the stats sampler behind /dashboard, the alerts and
 * S4 finds it with DiscoveryService, as /metrics finds GAUGE_SOURCE providers.
 */
export const STATS_SOURCE = DiscoveryService.createDecorator<void>();
