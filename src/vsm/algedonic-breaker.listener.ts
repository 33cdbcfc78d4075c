import type { Logger } from '@nestjs/common';
import { VsmChannel } from './vsm.channels';
import type { VsmBus } from './vsm-bus.service';

/**
 * The two calls a breaker makes once per episode of a target: it started hurting (its breaker
 * opened, or 3 failures in a row) and, later, it recovered. The breakers (src/pool) decide when an
 * episode starts and ends; this side only says so on the algedonic channel. Same shape as the
 * pool's `BreakerListener`, declared here because vsm sits below pool.
 */
export interface BreakerEpisodeListener {
  hurting(target: string, reason: string, context: Record<string, unknown>): void;
  recovered(target: string, metrics: Record<string, unknown>): void;
}

/** How the log lines of one kind of breaker target read. */
export interface AlgedonicLogging {
  log: Pick<Logger, 'warn' | 'log'>;
  /** The log field that carries the target (`replica`, `transport`). */
  field: string;
  /** The target as the log message names it (`replica r1`; a transport target names itself). */
  name: (target: string) => string;
}

/**
 * Turns breaker episodes into algedonic signals: one `pain('critical', target, reason, context)`
 * when an episode starts and one `pleasure('moderate', target, recoveryMetrics)` when it ends,
 * each with one log line. Used by the replica breakers (PoolManager) and the client-transport
 * breakers (ClientTransportGuardService); the source of each signal is the breaker's target.
 */
export class AlgedonicBreakerListener implements BreakerEpisodeListener {
  constructor(
    private readonly vsm: Pick<VsmBus, 'publish'>,
    private readonly logging: AlgedonicLogging,
  ) {}

  hurting(target: string, message: string, context: Record<string, unknown>): void {
    const { log, field, name } = this.logging;
    log.warn({ [field]: target, ...context }, `${name(target)} is failing: ${message}`);
    this.vsm.publish(VsmChannel.Algedonic, {
      type: 'pain',
      severity: 'critical',
      source: target,
      message,
      context,
    });
  }

  recovered(target: string, recoveryMetrics: Record<string, unknown>): void {
    const { log, field, name } = this.logging;
    log.log({ [field]: target, ...recoveryMetrics }, `${name(target)} recovered`);
    this.vsm.publish(VsmChannel.Algedonic, {
      type: 'pleasure',
      severity: 'moderate',
      source: target,
      recoveryMetrics,
    });
  }
}
