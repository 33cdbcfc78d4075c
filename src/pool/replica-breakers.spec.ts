import assert from 'node:assert/strict';
import { describe, mock, test } from 'node:test';
import { waitUntil } from '../testing/wait';
import {
  Breakers,
  CONSECUTIVE_FAILURES_PAIN,
  type BreakerListener,
  type BreakerSettings,
} from './replica-breakers';

const FAST: BreakerSettings = {
  errorThresholdPercentage: 50,
  volumeThreshold: 4,
  resetTimeoutMs: 150,
  rollingWindowMs: 10_000,
};

function recorder() {
  const events: Array<{ kind: 'pain' | 'pleasure' | 'state'; target: string; detail: string }> = [];
  const listener: BreakerListener = {
    hurting: (target, reason) => events.push({ kind: 'pain', target, detail: reason }),
    recovered: (target) => events.push({ kind: 'pleasure', target, detail: '' }),
    stateChanged: (target, state) => events.push({ kind: 'state', target, detail: state }),
  };
  return { events, listener };
}

/** opossum counts an outcome in a promise continuation: let those run. */
const settle = () => new Promise((r) => setImmediate(r));

describe('Breakers', () => {
  test('below the volume threshold a failure never opens the breaker', async () => {
    const { listener } = recorder();
    const b = new Breakers(listener);
    b.ensure('r1', FAST);
    b.record('r1', false);
    b.record('r1', true);
    b.record('r1', true);
    await settle();
    assert.equal(b.state('r1'), 'closed');
    assert.equal(b.allows('r1'), true);
    b.shutdown();
  });

  test('opens past the error percentage, fails fast, lets one probe through half-open, closes on success', async () => {
    const { events, listener } = recorder();
    const b = new Breakers(listener);
    b.ensure('r1', FAST);
    b.record('r1', true);
    b.record('r1', true);
    b.record('r1', false);
    await settle();
    assert.equal(b.state('r1'), 'closed', '1 of 3 failed: under the volume threshold');
    b.record('r1', false);
    b.record('r1', false);
    await settle();
    assert.equal(b.state('r1'), 'open', '3 of 5 failed > 50 %');
    assert.equal(b.allows('r1'), false, 'open fails fast');
    // Outcomes while open (answers of requests sent before) change nothing.
    b.record('r1', true);
    await settle();
    assert.equal(b.state('r1'), 'open');
    await waitUntil(() => b.state('r1') === 'half_open', 3000, 'half-open after resetTimeout');
    assert.equal(b.allows('r1'), true, 'half-open lets a probe through');
    b.record('r1', true);
    await settle();
    assert.equal(b.state('r1'), 'closed');
    const pains = events.filter((e) => e.kind === 'pain');
    const pleasures = events.filter((e) => e.kind === 'pleasure');
    assert.equal(pains.length, 1, `one pain per episode: ${JSON.stringify(events)}`);
    assert.equal(pleasures.length, 1, 'one pleasure per episode');
    assert.ok(events.indexOf(pains[0]) < events.indexOf(pleasures[0]));
    b.shutdown();
  });

  test('a failed probe opens the breaker again without a second pain event', async () => {
    const { events, listener } = recorder();
    const b = new Breakers(listener);
    b.ensure('r1', { ...FAST, volumeThreshold: 1 });
    b.record('r1', false);
    await settle();
    assert.equal(b.state('r1'), 'open');
    await waitUntil(() => b.state('r1') === 'half_open', 3000, 'half-open');
    b.record('r1', false);
    await settle();
    assert.equal(b.state('r1'), 'open', 'the probe failed');
    await waitUntil(() => b.state('r1') === 'half_open', 3000, 'half-open again');
    b.record('r1', true);
    await settle();
    assert.equal(b.state('r1'), 'closed');
    assert.deepEqual(
      events.filter((e) => e.kind !== 'state').map((e) => e.kind),
      ['pain', 'pleasure'],
    );
    b.shutdown();
  });

  test(`${CONSECUTIVE_FAILURES_PAIN} failures in a row are an episode even while the breaker stays closed`, async () => {
    const { events, listener } = recorder();
    const b = new Breakers(listener);
    b.ensure('r1', { ...FAST, volumeThreshold: 1000 });
    for (let i = 0; i < CONSECUTIVE_FAILURES_PAIN - 1; i++) b.record('r1', false);
    assert.equal(events.filter((e) => e.kind === 'pain').length, 0);
    b.record('r1', false);
    b.record('r1', false);
    await settle();
    assert.equal(b.state('r1'), 'closed');
    const pain = events.filter((e) => e.kind === 'pain');
    assert.equal(pain.length, 1);
    assert.match(pain[0].detail, /consecutive failures/);
    b.record('r1', true);
    assert.equal(events.filter((e) => e.kind === 'pleasure').length, 1, 'the next success is the recovery');
    b.record('r1', true);
    assert.equal(events.filter((e) => e.kind === 'pleasure').length, 1, 'once');
    b.shutdown();
  });

  test('S3 forced states pin the breaker; auto hands it back to the statistics', async () => {
    const { listener } = recorder();
    const b = new Breakers(listener);
    b.ensure('r1', FAST);
    b.force('r1', 'open');
    await settle();
    assert.equal(b.state('r1'), 'open');
    assert.equal(b.allows('r1'), false);
    for (let i = 0; i < 10; i++) b.record('r1', true);
    await settle();
    assert.equal(b.state('r1'), 'open', 'outcomes do not move a forced breaker');
    b.force('r1', 'closed');
    for (let i = 0; i < 10; i++) b.record('r1', false);
    await settle();
    assert.equal(b.state('r1'), 'closed', 'forced closed stays closed');
    b.force('r1', 'auto');
    await settle();
    assert.equal(b.state('r1'), 'closed');
    for (let i = 0; i < 5; i++) b.record('r1', false);
    await settle();
    assert.equal(b.state('r1'), 'open', 'automatic again');
    b.shutdown();
  });

  test('the error percentage is taken over successes and failures alike', async () => {
    const { listener } = recorder();
    const b = new Breakers(listener);
    b.ensure('r1', { ...FAST, volumeThreshold: 5 });
    for (let i = 0; i < 6; i++) b.record('r1', true);
    for (let i = 0; i < 6; i++) {
      b.record('r1', false);
      await settle();
      // Without the 6 successes, 5 failures would be 100 %.
      assert.equal(b.state('r1'), 'closed', `${i + 1} of ${i + 7} failed: not over 50 %`);
    }
    b.record('r1', false);
    await settle();
    assert.equal(b.state('r1'), 'open', '7 of 13 failed: over 50 %');
    // Successes arriving between a failure and opossum's check of it count too.
    b.ensure('r2', { ...FAST, volumeThreshold: 1 });
    b.record('r2', false);
    b.record('r2', true);
    b.record('r2', true);
    await settle();
    assert.equal(b.state('r2'), 'closed', '1 of 3 failed');
    b.shutdown();
  });

  test('successes count in the window they happened in, and leave it as they age', async (t) => {
    // The window's buckets rotate on the Breakers' interval: fake it, and move time by exactly
    // the rotations meant (a 1000 ms window is 10 buckets of 100 ms).
    mock.timers.enable({ apis: ['setInterval'] });
    t.after(() => mock.timers.reset());
    const { listener } = recorder();
    const b = new Breakers(listener);
    const window = { ...FAST, volumeThreshold: 5, rollingWindowMs: 1000 };
    b.ensure('fresh', window);
    b.ensure('aged', window);
    for (let i = 0; i < 20; i++) {
      b.record('fresh', true);
      b.record('aged', true);
    }
    // A bucket rotation or two later the successes are still in the window: 5 of 25 failed.
    mock.timers.tick(250);
    for (let i = 0; i < 5; i++) b.record('fresh', false);
    await settle();
    assert.equal(b.state('fresh'), 'closed');
    // Once the window has moved past them they are gone: 5 of 5 failed.
    mock.timers.tick(1300);
    for (let i = 0; i < 5; i++) b.record('aged', false);
    await settle();
    assert.equal(b.state('aged'), 'open');
    b.shutdown();
  });

  test('the pain event reports the successes counted so far', () => {
    const contexts: Array<Record<string, unknown>> = [];
    const b = new Breakers({
      hurting: (_t, _r, context) => contexts.push(context),
      recovered: () => undefined,
    });
    b.ensure('r1', { ...FAST, volumeThreshold: 1000 });
    for (let i = 0; i < 3; i++) b.record('r1', true);
    for (let i = 0; i < CONSECUTIVE_FAILURES_PAIN; i++) b.record('r1', false);
    assert.equal(contexts.length, 1);
    assert.equal(contexts[0].successes, 3);
    b.shutdown();
  });
});
