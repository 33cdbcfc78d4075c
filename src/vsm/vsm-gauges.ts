import { Injectable } from '@nestjs/common';
import { GAUGE_SOURCE, type Gauge, type GaugeSource, type Sample } from '../telemetry/gauge-source';
import { VsmBus } from './vsm-bus.service';

/** The VSM's "variety flow" for /metrics: events put on each channel, commands received. */
@GAUGE_SOURCE()
@Injectable()
export class VsmGauges implements GaugeSource {
  constructor(private readonly vsm: VsmBus) {}

  gauges(): readonly Gauge[] {
    return [
      {
        name: 'mcp_gateway_vsm_events_total',
        help: 'Events the gateway put on each VSM channel ("variety flow"; s1_operations: every client message)',
        type: 'counter',
        read: (out) => perChannel(out, this.vsm.events),
      },
      {
        name: 'mcp_gateway_vsm_commands_received_total',
        help: 'Commands received on the VSM channels the gateway obeys (s3_control)',
        type: 'counter',
        read: (out) => perChannel(out, this.vsm.received),
      },
    ];
  }
}

function perChannel(out: Sample[], counts: Readonly<Record<string, number>>): void {
  for (const [channel, value] of Object.entries(counts)) out.push({ labels: { channel }, value });
}
