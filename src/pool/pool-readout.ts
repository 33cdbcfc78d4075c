import { Injectable } from '@nestjs/common';
import { Router } from '../routing/router.service';
import {
  BREAKER_GAUGE_VALUE,
  GAUGE_SOURCE,
  type Gauge,
  type GaugeSource,
  type Sample,
} from '../telemetry/gauge-source';
import { HEALTH_SOURCE, type HealthIndicator, type HealthSource } from '../telemetry/health-source';
import {
  STATS_SOURCE,
  type ReplicaFigures,
  type StatsPart,
  type StatsSource,
} from '../telemetry/stats-source';
import { backgroundFailures } from './background-failures';
import { PoolManager } from './pool-manager.service';
import type { PoolStats } from './replica-pool';

/** A service's replicas for /health/ready. */
export interface ReplicaReadiness {
  /** Replicas that take work now: breaker not open, not draining, not marked unhealthy. */
  up: string[];
  down: string[];
}

/**
 * What the pool layer tells /metrics, /health and the stats sampler about itself: breakers, pool
 * figures, replicas and open upstream connections, read from state it already keeps (a probe
 * never opens a connection).
 */
@GAUGE_SOURCE()
@HEALTH_SOURCE()
@STATS_SOURCE()
@Injectable()
export class PoolReadout implements GaugeSource, HealthSource, StatsSource {
  constructor(
    private readonly pool: PoolManager,
    private readonly router: Router,
  ) {}

  gauges(): readonly Gauge[] {
    const poolGauge = (name: string, help: string, pick: (p: PoolStats) => number): Gauge => ({
      name,
      help,
      type: 'gauge',
      read: (out: Sample[]) => {
        for (const p of this.pool.poolStats()) out.push({ labels: { replica: p.replica }, value: pick(p) });
      },
    });
    return [
      {
        name: 'mcp_gateway_breaker_state',
        help: 'Circuit breaker of each upstream replica: 0 closed, 1 half-open, 2 open',
        type: 'gauge',
        read: (out) => {
          for (const replica of this.pool.breakers.targets()) {
            out.push({ labels: { replica }, value: BREAKER_GAUGE_VALUE[this.pool.breakers.state(replica)] });
          }
        },
      },
      poolGauge(
        'mcp_gateway_pool_size',
        'Upstream sessions in the pool of a replica (pooled services)',
        (p) => p.size,
      ),
      poolGauge('mcp_gateway_pool_in_use', 'Upstream sessions checked out of the pool', (p) => p.borrowed),
      poolGauge('mcp_gateway_pool_available', 'Idle upstream sessions in the pool', (p) => p.available),
      poolGauge(
        'mcp_gateway_pool_pending',
        'Requests waiting for an upstream session (queue depth)',
        (p) => p.pending,
      ),
      poolGauge('mcp_gateway_pool_max', 'Largest size the pool may grow to', (p) => p.max),
      {
        name: 'mcp_gateway_unattributed_messages_total',
        help: 'Pooled mode: upstream messages no client could be attributed, by method (notifications dropped, server requests refused)',
        type: 'counter',
        read: (out) => pushByKey(out, this.pool.isolationCounts().unattributed, 'method'),
      },
      {
        name: 'mcp_gateway_server_answers_refused_total',
        help: 'Pooled mode: client answers to server requests not taken, by reason (unknown_id, wrong_session)',
        type: 'counter',
        read: (out) => pushByKey(out, this.pool.isolationCounts().refusedAnswers, 'reason'),
      },
      {
        name: 'mcp_gateway_pool_background_failures_total',
        help: 'Failures of fire-and-forget work of the upstream pools, by task (logged at error; process-wide)',
        type: 'counter',
        read: (out) => pushByKey(out, backgroundFailures, 'task'),
      },
      {
        name: 'mcp_gateway_upstream_connections',
        help: 'Dedicated upstream connections open (one per session in dedicated mode)',
        type: 'gauge',
        read: (out) => out.push({ labels: {}, value: this.pool.stats().open }),
      },
    ];
  }

  healthIndicators(): readonly HealthIndicator[] {
    return [
      {
        name: 'upstreams',
        probe: 'health',
        check: () => ({ up: true, details: { open: this.pool.stats().open } }),
      },
      {
        name: 'replicas',
        probe: 'ready',
        check: () => {
          const services = this.replicas();
          // Ready while every service has a replica that takes work; an empty service cannot serve.
          return { up: Object.values(services).every((s) => s.up.length > 0), details: { services } };
        },
      },
      {
        name: 'pools',
        probe: 'ready',
        check: () => {
          const exhausted = this.exhaustedPools();
          return exhausted.length === 0 ? { up: true } : { up: false, details: { exhausted } };
        },
      },
    ];
  }

  /** Pools, and each replica with its routing state, breaker and sessions. */
  statsPart(): StatsPart {
    const replicas: ReplicaFigures[] = [];
    for (const service of this.router.view()) {
      for (const r of service.replicas) {
        replicas.push({
          service: service.name,
          id: r.id,
          state: r.state,
          breaker: this.pool.breakers.state(r.id),
          sessions: r.sessions,
        });
      }
    }
    return { pools: this.pool.poolStats(), replicas };
  }

  /** Per service, its replicas that take work and those that do not. */
  replicas(): Record<string, ReplicaReadiness> {
    const out: Record<string, ReplicaReadiness> = {};
    for (const service of this.router.serviceNames()) {
      const entry: ReplicaReadiness = { up: [], down: [] };
      for (const id of this.router.replicaIds(service)) {
        const usable = this.pool.breakers.allows(id) && this.router.states.isActive(id);
        (usable ? entry.up : entry.down).push(id);
      }
      out[service] = entry;
    }
    return out;
  }

  /** Pooled replicas whose pool is at its maximum with requests waiting. */
  exhaustedPools(): { replica: string; inUse: number; max: number; pending: number }[] {
    return this.pool
      .poolStats()
      .filter((p) => p.max > 0 && p.borrowed >= p.max && p.pending > 0)
      .map((p) => ({ replica: p.replica, inUse: p.borrowed, max: p.max, pending: p.pending }));
  }
}

/** One sample per entry of `counts`, its key under `label`. */
function pushByKey(out: Sample[], counts: ReadonlyMap<string, number>, label: string): void {
  for (const [key, value] of counts) out.push({ labels: { [label]: key }, value });
}
