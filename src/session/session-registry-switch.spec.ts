import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ClientTransport } from '../core/transport-kind';
import type { Session, SessionHooks } from './session';
import { SessionRegistry, type SwitchVerdict } from './session-registry';
import { InMemorySessionStore } from './session-store';

const HOOKS: SessionHooks = {
  clientMessage() {},
  upstreamMessage() {},
  sessionClosed() {},
  overflow() {},
  backpressure() {},
};

/** A registry whose S2 answers only when the test says so, recording what it was asked. */
function registryWithManualS2() {
  const asked: ClientTransport[] = [];
  const answers: Array<(v: SwitchVerdict) => void> = [];
  const registry = new SessionRegistry(
    new InMemorySessionStore(),
    {
      idleTimeoutMs: 60_000,
      sweepIntervalMs: 60_000,
      outboxMaxMessages: 16,
      outboxMaxBytes: 1 << 16,
      maxInFlight: 8,
      dedupeWindow: 8,
      requestTimeoutMs: 0,
      detachedTimeoutMs: 60_000,
      outboxResumeWindowMs: 30_000,
      outboxGlobalMaxBytes: 1e9,
      dedupeWindowMs: 60_000,
    },
    // An upstream that never comes: these tests only move sessions between transports.
    () => new Promise(() => undefined),
    HOOKS,
    (_session: Session, to: ClientTransport) => {
      asked.push(to);
      return new Promise<SwitchVerdict>((ok) => answers.push(ok));
    },
  );
  return { registry, asked, answers };
}

async function settle(): Promise<void> {
  await new Promise((r) => setImmediate(r));
}

describe('SessionRegistry.admitTransportSwitch: one S2 decision per switch', () => {
  test('concurrent requests onto the same new transport share one pending decision', async () => {
    const { registry, asked, answers } = registryWithManualS2();
    const session = registry.create('c', 'svc', 'ws');
    const verdicts = [0, 1, 2].map(() => registry.admitTransportSwitch(session, 'streamable'));
    await settle();
    assert.deepEqual(asked, ['streamable'], 'S2 asked once');
    answers[0]({ allowed: true });
    assert.deepEqual(
      (await Promise.all(verdicts)).map((v) => v.allowed),
      [true, true, true],
    );
    assert.equal(session.transport, 'streamable');
    // Now on that transport: no further question.
    assert.equal((await registry.admitTransportSwitch(session, 'streamable')).allowed, true);
    assert.equal(asked.length, 1);
  });

  test('a refusal is shared too, and the session stays where it was', async () => {
    const { registry, asked, answers } = registryWithManualS2();
    const session = registry.create('c', 'svc', 'sse');
    const verdicts = [
      registry.admitTransportSwitch(session, 'ws'),
      registry.admitTransportSwitch(session, 'ws'),
    ];
    await settle();
    answers[0]({ allowed: false, reason: 'too many' });
    assert.deepEqual(
      (await Promise.all(verdicts)).map((v) => v.reason),
      ['too many', 'too many'],
    );
    assert.equal(asked.length, 1);
    assert.equal(session.transport, 'sse');
  });

  test('a request for another transport waits for the pending decision, then asks for its own', async () => {
    const { registry, asked, answers } = registryWithManualS2();
    const session = registry.create('c', 'svc', 'ws');
    const toStreamable = registry.admitTransportSwitch(session, 'streamable');
    const toSse = registry.admitTransportSwitch(session, 'sse');
    await settle();
    assert.deepEqual(asked, ['streamable'], 'the second waits instead of racing');
    answers[0]({ allowed: true });
    assert.equal((await toStreamable).allowed, true);
    await settle();
    assert.deepEqual(asked, ['streamable', 'sse']);
    answers[1]({ allowed: true });
    assert.equal((await toSse).allowed, true);
    assert.equal(session.transport, 'sse');
  });
});
