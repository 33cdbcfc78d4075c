import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { ConfigModule } from '../config/config.module';
import { loadConfig } from '../config/load-config';
import { GAUGE_SOURCE, type Gauge, type GaugeSource } from '../telemetry/gauge-source';
import { HEALTH_SOURCE, type HealthIndicator, type HealthSource } from '../telemetry/health-source';
import { STATS_SOURCE, type StatsPart, type StatsSource } from '../telemetry/stats-source';
import { TelemetryModule } from '../telemetry/telemetry.module';
import { VsmModule } from '../vsm/vsm.module';
import { Readiness } from './health/readiness.service';
import { MetricsService } from './metrics/metrics.service';
import { MonitoringModule } from './monitoring.module';
import { ObservabilityModule } from './observability.module';
import { StatsSampler } from './stats/stats-sampler.service';

/** A team's feature that reports on itself: one provider carrying all three markers. */
@GAUGE_SOURCE()
@HEALTH_SOURCE()
@STATS_SOURCE()
@Injectable()
class Widgets implements GaugeSource, HealthSource, StatsSource {
  spinning = 3;
  stopping = false;

  gauges(): readonly Gauge[] {
    return [
      {
        name: 'team_widgets_spinning',
        help: 'Widgets spinning now',
        type: 'gauge',
        read: (out) => out.push({ labels: {}, value: this.spinning }),
      },
    ];
  }

  healthIndicators(): readonly HealthIndicator[] {
    return [{ name: 'widgets', probe: 'ready', check: () => ({ up: this.spinning > 0 }) }];
  }

  shuttingDown(): boolean {
    return this.stopping;
  }

  statsPart(): StatsPart {
    return { connections: { streamable: 0, sse: 0, ws: this.spinning } };
  }
}

@Module({ providers: [Widgets] })
class TeamModule {}

describe('GAUGE_SOURCE, HEALTH_SOURCE and STATS_SOURCE', () => {
  test("a provider in a team's own module is found by /metrics, readiness and the stats sampler", async () => {
    const config = loadConfig({ LOG_LEVEL: 'silent' });
    // No session, pool or routing module: ops needs none of them to start, only what reports.
    @Module({
      imports: [
        ConfigModule.forRoot(config),
        EventEmitterModule.forRoot(),
        TelemetryModule,
        VsmModule,
        ObservabilityModule,
        MonitoringModule,
        TeamModule,
      ],
    })
    class Root {}
    const app = await NestFactory.createApplicationContext(Root, { logger: false, abortOnError: false });
    try {
      const widgets = app.get(Widgets);
      const metrics = await app.get(MetricsService).registry.metrics();
      assert.match(metrics, /^team_widgets_spinning 3$/m);

      const readiness = app.get(Readiness);
      assert.deepEqual(
        readiness.indicators('ready').map((i) => i.name),
        ['widgets'],
      );
      assert.equal(readiness.draining, false);
      widgets.stopping = true;
      assert.equal(readiness.draining, true, 'a feature shutting down makes the gateway not ready');

      widgets.spinning = 5;
      assert.equal(app.get(StatsSampler).tick().connections.ws, 5);
    } finally {
      await app.close();
    }
  });
});
