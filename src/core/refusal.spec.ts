import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AdmissionRefusedError, isRefusal, overloaded, retryAfterSeconds } from './refusal';

class Full extends AdmissionRefusedError {
  readonly code = 'test_full';
}

describe('Refusal', () => {
  test('a capacity refusal: 503, −31003, Retry-After in whole seconds, retryAfterMs in data', () => {
    const r = overloaded('session_capacity', 'full', 1500);
    assert.equal(r.status, 503);
    assert.equal(r.code, -31003);
    assert.equal(r.reason, 'session_capacity');
    assert.deepEqual(r.data, { retryAfterMs: 1500 });
    assert.deepEqual(r.headers, { 'retry-after': '2' });
    assert.ok(isRefusal(r));
  });

  test('Retry-After is at least one second', () => {
    assert.equal(retryAfterSeconds(0), 1);
    assert.equal(retryAfterSeconds(1000), 1);
    assert.equal(retryAfterSeconds(1001), 2);
  });

  test('a thrown admission refusal keeps its code and says its refusal', () => {
    const err = new Full('no room', 5000);
    assert.ok(err instanceof Error);
    assert.equal(err.code, 'test_full');
    const r = err.refusal;
    assert.equal(r.reason, 'test_full');
    assert.equal(r.message, 'no room');
    assert.deepEqual(r.headers, { 'retry-after': '5' });
  });

  test('an identity is not a refusal', () => {
    assert.ok(!isRefusal({ clientId: 'alice' }));
    assert.ok(!isRefusal(undefined));
  });
});
