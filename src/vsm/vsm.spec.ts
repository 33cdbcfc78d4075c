import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EventEmitter2 } from '@nestjs/event-emitter';
import type { GatewayConfig } from '../config/gateway-config';
import { S2Coordinator } from './s2-coordinator.listener';
import { VsmBus } from './vsm-bus.service';
import { VsmChannel, type S1Event } from './vsm.channels';

const s1 = (n: number): S1Event => ({
  type: 'external_message',
  clientId: 'c',
  payload: { n },
  metadata: { sessionId: 's', transport: 'ws', service: 'demo', receivedAt: 0 },
});

describe('VsmBus S1 publishing', () => {
  test('listeners get every event in order, after the publisher has moved on', async () => {
    const emitter = new EventEmitter2();
    const bus = new VsmBus(emitter);
    const seen: number[] = [];
    emitter.on(VsmChannel.S1Operations, (e: S1Event) => seen.push((e.payload as { n: number }).n));
    assert.equal(bus.hasListeners(VsmChannel.S1Operations), true);
    bus.publishS1(s1(1));
    bus.publishS1(s1(2));
    assert.deepEqual(seen, [], 'nothing ran on the publishing path');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, [1, 2]);
  });

  test('a throwing listener does not stop the others or the publisher', async () => {
    const emitter = new EventEmitter2();
    const bus = new VsmBus(emitter);
    let calls = 0;
    emitter.on(VsmChannel.S1Operations, () => {
      calls++;
      throw new Error('bad listener');
    });
    bus.publishS1(s1(1));
    bus.publishS1(s1(2));
    await new Promise((r) => setImmediate(r));
    assert.equal(calls, 2);
  });

  test('with no listener nothing is listening', () => {
    assert.equal(new VsmBus(new EventEmitter2()).hasListeners(VsmChannel.S1Operations), false);
  });
});

describe('S2 anti-oscillation', () => {
  const config = { s2: { maxSwitches: 3, windowMs: 60_000 } } as GatewayConfig;

  test('allows three switches in the window and refuses the fourth with a reason', () => {
    const s2 = new S2Coordinator(config);
    const t0 = 1_000_000;
    for (let i = 0; i < 3; i++) assert.equal(s2.decide('client-a', t0 + i * 1000).allowed, true);
    const fourth = s2.decide('client-a', t0 + 3000);
    assert.equal(fourth.allowed, false);
    assert.match(fourth.reason ?? '', /3 switches in the last 60 s/);
    assert.equal(s2.decide('client-b', t0 + 3000).allowed, true, 'other clients are not affected');
    assert.equal(s2.decide('client-a', t0 + 60_001).allowed, true, 'the window slides');
  });

  test('with a limit of 0 every switch is refused with a finite retry time', () => {
    const verdict = new S2Coordinator({ s2: { maxSwitches: 0, windowMs: 60_000 } } as GatewayConfig).decide(
      'c',
      1,
    );
    assert.equal(verdict.allowed, false);
    assert.match(verdict.reason ?? '', /retry in 60 s/);
  });

  test('the bus asks the coordinator and reports its refusal', async () => {
    const emitter = new EventEmitter2();
    const bus = new VsmBus(emitter);
    const s2 = new S2Coordinator({ s2: { maxSwitches: 1, windowMs: 60_000 } } as GatewayConfig);
    emitter.on(VsmChannel.S2Coordination, (e) => s2.checkOscillation(e));
    const ask = () =>
      bus.checkOscillation({ type: 'check_oscillation', clientId: 'c', from: 'ws', to: 'sse' });
    assert.equal((await ask()).allowed, true);
    assert.equal((await ask()).allowed, false);
  });
});
