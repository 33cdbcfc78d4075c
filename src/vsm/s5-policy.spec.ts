import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EventEmitter2 } from '@nestjs/event-emitter';
import type { GatewayConfig } from '../config/gateway-config';
import { S5PolicyListener } from './s5-policy.listener';
import { VsmBus } from './vsm-bus.service';
import { VsmChannel, type S5Event } from './vsm.channels';

const ask = { type: 'check_compliance' as const, action: 'session.admit', context: { clientId: 'c' } };

describe('S5 questions (VsmBus.askPolicy)', () => {
  test('no listener: allowed; the default listener approves; one refusal refuses with its reason', async () => {
    const emitter = new EventEmitter2();
    const bus = new VsmBus(emitter);
    assert.deepEqual(await bus.askPolicy(ask, 50, 'deny'), { allowed: true });
    const listener = new S5PolicyListener({ admin: { token: 'x'.repeat(16) } } as GatewayConfig);
    emitter.on(VsmChannel.S5Policy, (e: S5Event) => listener.answer(e));
    assert.equal((await bus.askPolicy(ask, 50, 'deny')).allowed, true);
    emitter.on(VsmChannel.S5Policy, () => ({ allowed: false, reason: 'frozen' }));
    assert.deepEqual(await bus.askPolicy(ask, 50, 'allow'), { allowed: false, reason: 'frozen' });
  });

  test('a listener that throws or never answers leaves it to the configured default, within the timeout', async () => {
    for (const fallback of ['allow', 'deny'] as const) {
      const failing = new EventEmitter2();
      failing.on(VsmChannel.S5Policy, () => Promise.reject(new Error('policy service down')));
      const failed = await new VsmBus(failing).askPolicy(ask, 50, fallback);
      assert.equal(failed.allowed, fallback === 'allow');
      assert.equal(failed.defaulted, true);
      assert.match(failed.reason ?? '', /policy service down/);

      const silent = new EventEmitter2();
      silent.on(VsmChannel.S5Policy, () => new Promise(() => {}));
      const started = Date.now();
      const timedOut = await new VsmBus(silent).askPolicy(ask, 50, fallback);
      assert.ok(Date.now() - started < 1000);
      assert.equal(timedOut.allowed, fallback === 'allow');
      assert.match(timedOut.reason ?? '', /did not answer check_compliance within 50 ms/);
    }
  });

  test('the default verify_identity approves only when the admin API exists (ADMIN_TOKEN)', () => {
    const op = { type: 'verify_identity' as const, operation: 'admin.POST /admin/x' };
    assert.equal(
      new S5PolicyListener({ admin: { token: undefined } } as GatewayConfig).answer(op)?.allowed,
      false,
    );
    assert.equal(
      new S5PolicyListener({ admin: { token: 'x'.repeat(16) } } as GatewayConfig).answer(op)?.allowed,
      true,
    );
  });
});
