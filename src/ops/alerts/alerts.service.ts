import { Inject, Injectable, Logger } from '@nestjs/common';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { VsmChannel } from '../../vsm/vsm.channels';
import { VsmBus } from '../../vsm/vsm-bus.service';
import { StatsSampler } from '../stats/stats-sampler.service';
import { AlertEngine, type ActiveAlert, type AlertEvent } from './alert-engine';
import { alertRules } from './alert-rules';

/** Raised and cleared alerts kept for the dashboard. */
const RECENT_EVENTS = 50;

/**
 * The in-process alerts: evaluated on every stats sample; each raise and clear is one log line,
 * an entry on the dashboard, and for critical alerts a pain (raise) or pleasure (clear) signal on
 * the algedonic channel.
 */
@Injectable()
export class AlertsService {
  private readonly log = new Logger('Alerts');
  private readonly engine: AlertEngine;
  private readonly recentEvents: AlertEvent[] = [];

  constructor(
    @Inject(GATEWAY_CONFIG) config: GatewayConfig,
    sampler: StatsSampler,
    private readonly vsm: VsmBus,
  ) {
    this.engine = new AlertEngine(alertRules(config.alerts));
    sampler.onSample((sample, history) => {
      for (const event of this.engine.evaluate(history, sample.t)) this.announce(event);
    });
  }

  active(): ActiveAlert[] {
    return this.engine.active();
  }

  recent(): readonly AlertEvent[] {
    return this.recentEvents;
  }

  private announce(event: AlertEvent): void {
    this.recentEvents.push(event);
    if (this.recentEvents.length > RECENT_EVENTS) this.recentEvents.shift();
    const fields = {
      alert: event.name,
      severity: event.severity,
      value: event.value,
      threshold: event.threshold,
      subject: event.subject,
    };
    if (event.type === 'raised') {
      this.log.warn(fields, `alert raised: ${event.name}: ${event.summary}`);
      if (event.severity === 'critical') {
        this.vsm.publish(VsmChannel.Algedonic, {
          type: 'pain',
          severity: 'critical',
          source: `alert:${event.name}`,
          message: event.summary,
          context: { ...fields },
        });
      }
    } else {
      this.log.log(fields, `alert cleared: ${event.name}`);
      if (event.severity === 'critical') {
        this.vsm.publish(VsmChannel.Algedonic, {
          type: 'pleasure',
          severity: 'moderate',
          source: `alert:${event.name}`,
          recoveryMetrics: { ...fields, activeForMs: event.at - event.since },
        });
      }
    }
  }
}
