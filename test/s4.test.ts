/**
 * VSM S4 through the real gateway: an SDK client's tool calls are counted per client at the S1
 * hook, and with the sampler stepped by hand S4 publishes gateway_metrics with the traffic's figures
 * and the client's usage class (tool_heavy) on s4_intelligence.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { StatsSampler } from '../src/ops/stats/stats-sampler.service';
import type { S4Event } from '../src/vsm/vsm.channels';
import { connectClient } from './helpers/clients';
import { startGateway, type RunningGateway } from './helpers/gateway';

describe('S4 end to end', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway({
      stats: { sampleIntervalMs: 3_600_000, historySamples: 300 },
      s4: { intervalMs: 2000 } as never,
    });
  });
  after(() => gw?.close());

  test('gateway_metrics and usage_pattern on s4_intelligence', async () => {
    const sampler = gw.gateway.app.get(StatsSampler);
    const events: S4Event[] = [];
    gw.gateway.app.get(EventEmitter2).on('s4_intelligence', (e: S4Event) => events.push(e));
    const t0 = Date.now();
    sampler.tick(t0);
    const { client } = await connectClient(gw.url, 'ws');
    for (let i = 0; i < 12; i++) await client.callTool({ name: 'echo', arguments: { text: `m${i}` } });
    sampler.tick(t0 + 1000);
    assert.equal(events.length, 0, 'nothing before the interval');
    sampler.tick(t0 + 2000);

    const metrics = events.filter((e) => e.type === 'gateway_metrics');
    assert.equal(metrics.length, 1);
    const stats = (metrics[0] as { stats: Record<string, number> }).stats;
    assert.equal(stats.connections_ws, 1);
    assert.equal(stats.sessions_ws, 1);
    // initialize, notifications/initialized and 12 tools/call over the two seconds.
    assert.equal(stats.messages_in_per_second, 7);
    assert.equal(stats.error_rate, 0);
    const patterns = events.filter((e) => e.type === 'usage_pattern') as Array<{
      clientId: string;
      patternType: string;
    }>;
    assert.equal(patterns.length, 1);
    assert.equal(patterns[0].patternType, 'tool_heavy');
    assert.equal(typeof patterns[0].clientId, 'string');

    // Two quiet seconds: the client turns idle.
    sampler.tick(t0 + 4000);
    const later = events.filter((e) => e.type === 'usage_pattern').slice(1) as Array<{ patternType: string }>;
    assert.deepEqual(
      later.map((e) => e.patternType),
      ['idle'],
    );
    await client.close();
  });
});
