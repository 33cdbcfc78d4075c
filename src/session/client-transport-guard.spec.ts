import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BreakerListener } from '../pool/replica-breakers';
import { ClientTransportGuard, TransportRefusedError } from './client-transport-guard';
import { AdmissionRefusedError } from './session-capacity';

const SETTINGS = {
  errorThresholdPercentage: 50,
  volumeThreshold: 2,
  resetTimeoutMs: 3000,
  rollingWindowMs: 10_000,
};

function guardWithEvents() {
  const events: string[] = [];
  const listener: BreakerListener = {
    hurting: (target) => events.push(`pain ${target}`),
    recovered: (target) => events.push(`pleasure ${target}`),
  };
  return { guard: new ClientTransportGuard(SETTINGS, listener), events };
}

function refusal(fn: () => void): TransportRefusedError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TransportRefusedError && err instanceof AdmissionRefusedError);
    return err;
  }
  assert.fail('expected a refusal');
}

describe('ClientTransportGuard', () => {
  test('a cap counts live sessions unless the transport measures its connections; 0 is no cap', () => {
    const { guard } = guardWithEvents();
    guard.setCap('streamable', 2);
    guard.opened('streamable');
    guard.opened('streamable');
    const err = refusal(() => guard.check('streamable'));
    assert.equal(err.code, 'transport_capacity');
    assert.equal(err.retryAfterMs, 5000);
    guard.check('sse'); // other transports are not capped
    guard.closed('streamable');
    guard.check('streamable');

    let connections = 3;
    guard.measure('ws', () => connections);
    guard.setCap('ws', 3);
    assert.equal(refusal(() => guard.check('ws')).code, 'transport_capacity');
    connections = 2;
    guard.check('ws');
    connections = 100;
    guard.setCap('ws', 0);
    guard.check('ws');
    assert.deepEqual(guard.stats().ws, { live: 100, cap: 0, state: 'closed' });
  });

  test('forcing open refuses that transport only, with the reset timeout as Retry-After; auto releases it', () => {
    const { guard, events } = guardWithEvents();
    guard.force('sse', 'open');
    const err = refusal(() => guard.check('sse'));
    assert.equal(err.code, 'transport_unavailable');
    assert.equal(err.retryAfterMs, SETTINGS.resetTimeoutMs);
    assert.match(err.message, /sse transport is failing/);
    guard.check('ws');
    guard.check('streamable');
    guard.force('sse', 'auto');
    guard.check('sse');
    // Forced open is an episode like any other (Breakers' rule): one pain, one pleasure.
    assert.deepEqual(events, ['pain transport:sse', 'pleasure transport:sse']);
    guard.shutdown();
  });

  test('failures open a transport breaker with one pain event', async () => {
    const { guard, events } = guardWithEvents();
    for (let i = 0; i < 4; i++) guard.record('ws', false);
    await new Promise((r) => setImmediate(r));
    assert.equal(guard.state('ws'), 'open');
    assert.equal(guard.state('sse'), 'closed');
    assert.deepEqual(events, ['pain transport:ws']);
    guard.shutdown();
  });
});
