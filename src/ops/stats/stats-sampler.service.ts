import { getHeapStatistics } from 'node:v8';
import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { discoverMarked } from '../../telemetry/discover-marked';
import { GatewayMetrics } from '../../telemetry/gateway-metrics.service';
import { STATS_SOURCE, type StatsSource } from '../../telemetry/stats-source';
import { VsmBus } from '../../vsm/vsm-bus.service';
import { StatsWindow, type StatsSample } from './stats-sample';

export type SampleListener = (sample: StatsSample, history: StatsHistory) => void;

/** A bounded ring of samples, oldest first; windows are read from it by age. */
export class StatsHistory {
  private readonly samples: StatsSample[] = [];

  constructor(private readonly capacity: number) {}

  push(sample: StatsSample): void {
    this.samples.push(sample);
    if (this.samples.length > this.capacity) this.samples.shift();
  }

  get latest(): StatsSample | undefined {
    return this.samples[this.samples.length - 1];
  }

  get length(): number {
    return this.samples.length;
  }

  all(): readonly StatsSample[] {
    return this.samples;
  }

  /** The window of the last `ms` ending at the latest sample (from the oldest sample inside it). */
  window(ms: number): StatsWindow | undefined {
    const latest = this.latest;
    if (!latest) return undefined;
    const from = latest.t - ms;
    let start = latest;
    for (let i = this.samples.length - 1; i >= 0 && this.samples[i].t >= from; i--) start = this.samples[i];
    return new StatsWindow(latest, start);
  }
}

/**
 * Reads the gateway's figures once per interval (GatewayMetrics' plain counters, sessions, pools,
 * breakers, replica states, VSM event counts, the V8 heap) into a short history, and hands each
 * sample to the alerts, S4 and the dashboard. Nothing here runs per message. Sessions, pools,
 * breakers and replicas are filled in by the layers that own them (STATS_SOURCE providers).
 */
@Injectable()
export class StatsSampler implements OnModuleInit, OnApplicationShutdown {
  private readonly log = new Logger('Stats');
  readonly history: StatsHistory;
  private readonly listeners: SampleListener[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly sources: StatsSource[] = [];

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    private readonly metrics: GatewayMetrics,
    private readonly vsm: VsmBus,
    private readonly discovery?: DiscoveryService,
  ) {
    this.history = new StatsHistory(config.stats.historySamples);
  }

  onModuleInit(): void {
    if (this.discovery) this.sources.push(...discoverMarked<StatsSource, void>(this.discovery, STATS_SOURCE));
    this.tick();
    this.timer = setInterval(() => this.tick(), this.config.stats.sampleIntervalMs);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Called for every sample, in registration order (alerts before the dashboard). */
  onSample(listener: SampleListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i !== -1) this.listeners.splice(i, 1);
    };
  }

  /** Takes one sample now (the interval's job; tests call it to step). */
  tick(now = Date.now()): StatsSample {
    const sample = this.read(now);
    this.history.push(sample);
    for (const listener of this.listeners) {
      try {
        listener(sample, this.history);
      } catch (err) {
        this.log.warn(`stats listener failed: ${(err as Error).message}`);
      }
    }
    return sample;
  }

  private read(now: number): StatsSample {
    const m = this.metrics;
    const errorsByKind: Record<string, number> = {};
    let errors = 0;
    for (const [kind, n] of m.errors) {
      errorsByKind[kind] = n;
      errors += n;
    }
    for (const [entry, n] of m.internalErrors) {
      errorsByKind[`internal:${entry}`] = n;
      errors += n;
    }
    let transportFailovers = 0;
    for (const n of m.transportSwitches.values()) transportFailovers += n;
    let replicaFailovers = 0;
    for (const n of m.replicaFailovers.values()) replicaFailovers += n;
    const heap = getHeapStatistics();
    const sample: StatsSample = {
      t: now,
      connections: { streamable: 0, sse: 0, ws: 0 },
      sessions: { streamable: 0, sse: 0, ws: 0 },
      messagesIn: { ...m.messagesIn },
      messagesOut: { ...m.messagesOut },
      bytesOut: { ...m.bytesOut },
      errors,
      errorsByKind,
      transportFailovers,
      replicaFailovers,
      latency: m.requestLatency.snapshot(),
      pools: [],
      transportBreakers: { streamable: 'closed', sse: 'closed', ws: 'closed' },
      replicas: [],
      vsm: { ...this.vsm.events },
      heap: { used: heap.used_heap_size, total: heap.total_heap_size, limit: heap.heap_size_limit },
    };
    for (const source of this.sources) Object.assign(sample, source.statsPart());
    return sample;
  }
}
