/**
 * The in-process alerts through the real gateway: real client traffic and refused requests move
 * the counters, the stats sampler is stepped by hand (its own interval set out of the way), and
 * the error-rate alert is raised — on the dashboard's frame and as pain on the algedonic channel —
 * and cleared with pleasure once its window has slid past.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { AlertsService } from '../src/ops/alerts/alerts.service';
import { StatsSampler } from '../src/ops/stats/stats-sampler.service';
import type { AlgedonicEvent } from '../src/vsm/vsm.channels';
import { connectClient } from './helpers/clients';
import { startGateway, type RunningGateway } from './helpers/gateway';

describe('in-process alerts end to end', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway({
      stats: { sampleIntervalMs: 3_600_000, historySamples: 300 },
      // The heap rule off (threshold 1): a real heap may cross 80 % over the stepped minute.
      alerts: { errorRate: 0.05, errorRateMinMessages: 5, windowMs: 60_000, heapUsed: 1 } as never,
    });
  });
  after(() => gw?.close());

  test('HighErrorRate: raised by refused requests among real traffic, cleared when the minute has passed', async () => {
    const sampler = gw.gateway.app.get(StatsSampler);
    const alerts = gw.gateway.app.get(AlertsService);
    const algedonic: AlgedonicEvent[] = [];
    gw.gateway.app.get(EventEmitter2).on('algedonic', (e: AlgedonicEvent) => algedonic.push(e));
    const t0 = Date.now();
    sampler.tick(t0);

    const { client } = await connectClient(gw.url, 'streamable');
    for (let i = 0; i < 10; i++) await client.callTool({ name: 'echo', arguments: { text: `m${i}` } });
    sampler.tick(t0 + 1000);
    assert.deepEqual(alerts.active(), [], 'no error yet');

    // Ten requests naming a session that does not exist: refused (404) and counted as errors.
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${gw.url}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': 'no-such-session',
          'mcp-protocol-version': '2025-06-18',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/list' }),
      });
      assert.equal(res.status, 404);
      await res.arrayBuffer();
    }
    sampler.tick(t0 + 2000);
    const active = alerts.active();
    assert.deepEqual(
      active.map((a) => a.name),
      ['HighErrorRate'],
    );
    assert.ok(active[0].value! > 0.05);
    const pain = algedonic.filter((e) => e.type === 'pain' && e.source === 'alert:HighErrorRate');
    assert.equal(pain.length, 1);

    const snapshot = (await (await fetch(`${gw.url}/dashboard/snapshot`)).json()) as {
      alerts: Array<{ name: string }>;
    };
    assert.deepEqual(
      snapshot.alerts.map((a: { name: string }) => a.name),
      ['HighErrorRate'],
    );

    // A minute on with no error: the window holds too few messages to judge, the alert clears.
    sampler.tick(t0 + 63_000);
    assert.deepEqual(alerts.active(), []);
    const pleasure = algedonic.filter((e) => e.type === 'pleasure' && e.source === 'alert:HighErrorRate');
    assert.equal(pleasure.length, 1);
    assert.deepEqual(
      alerts.recent().map((e) => `${e.type} ${e.name}`),
      ['raised HighErrorRate', 'cleared HighErrorRate'],
    );
    await client.close();
  });
});
