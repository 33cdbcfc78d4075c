import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { AlgedonicBreakerListener } from './algedonic-breaker.listener';
import { VsmBus } from './vsm-bus.service';
import { VsmChannel, type AlgedonicEvent } from './vsm.channels';

function setup() {
  const emitter = new EventEmitter2();
  const bus = new VsmBus(emitter);
  const events: AlgedonicEvent[] = [];
  emitter.on(VsmChannel.Algedonic, (e: AlgedonicEvent) => events.push(e));
  const lines: Array<[string, Record<string, unknown>, string]> = [];
  const log = {
    warn: (fields: Record<string, unknown>, message: string) => lines.push(['warn', fields, message]),
    log: (fields: Record<string, unknown>, message: string) => lines.push(['log', fields, message]),
  };
  const listener = new AlgedonicBreakerListener(bus, {
    log,
    field: 'replica',
    name: (target) => `replica ${target}`,
  });
  return { bus, events, lines, listener };
}

describe('AlgedonicBreakerListener', () => {
  test('an episode is one pain (critical) and one pleasure (moderate) with the target as source', () => {
    const { bus, events, lines, listener } = setup();
    listener.hurting('r1', 'circuit breaker opened', { state: 'open', consecutiveFailures: 2 });
    listener.recovered('r1', { downForMs: 1200, state: 'closed' });
    assert.deepEqual(events, [
      {
        type: 'pain',
        severity: 'critical',
        source: 'r1',
        message: 'circuit breaker opened',
        context: { state: 'open', consecutiveFailures: 2 },
      },
      {
        type: 'pleasure',
        severity: 'moderate',
        source: 'r1',
        recoveryMetrics: { downForMs: 1200, state: 'closed' },
      },
    ]);
    assert.equal(bus.events.algedonic, 2, 'counted as variety flow');
    assert.deepEqual(lines, [
      [
        'warn',
        { replica: 'r1', state: 'open', consecutiveFailures: 2 },
        'replica r1 is failing: circuit breaker opened',
      ],
      ['log', { replica: 'r1', downForMs: 1200, state: 'closed' }, 'replica r1 recovered'],
    ]);
  });
});
