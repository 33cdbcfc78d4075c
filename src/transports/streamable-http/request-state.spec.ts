import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalJson, digestOf, paramsDigest, RequestStateCodec, type StatePayload } from './request-state';

const NOW = 1_800_000_000_000;

function payload(over: Partial<StatePayload> = {}): StatePayload {
  return {
    f: 'flow',
    r: 1,
    e: NOW + 1000,
    p: digestOf('alice\u0000svc'),
    m: 'tools/call',
    d: paramsDigest({ name: 't', arguments: { a: 1 } }),
    n: 'node-a',
    ...over,
  };
}

const expected = {
  principal: 'alice\u0000svc',
  method: 'tools/call',
  digest: paramsDigest({ name: 't', arguments: { a: 1 } }),
  now: NOW,
};

describe('RequestStateCodec', () => {
  const codec = new RequestStateCodec('k'.repeat(32), 'node-a');

  it('verifies what it minted, and gives the payload back', () => {
    const v = codec.verify(codec.mint(payload()), expected);
    assert.ok(v.ok);
    assert.equal(v.payload.f, 'flow');
  });

  it('refuses a state with any byte changed, or minted with another key', () => {
    const state = codec.mint(payload());
    const [v, body, mac] = state.split('.');
    const forged = Buffer.from(JSON.stringify({ ...payload(), r: 2 })).toString('base64url');
    assert.deepEqual(codec.verify(`${v}.${forged}.${mac}`, expected), { ok: false, reason: 'tampered' });
    assert.deepEqual(codec.verify(`${state}A`, expected), { ok: false, reason: 'tampered' });
    const other = new RequestStateCodec('x'.repeat(32), 'node-a');
    assert.deepEqual(other.verify(state, expected), { ok: false, reason: 'tampered' });
    assert.deepEqual(codec.verify(`${body}.${mac}`, expected), { ok: false, reason: 'malformed' });
    // Another node with the same configured key verifies it (cluster mode).
    assert.ok(new RequestStateCodec('k'.repeat(32), 'node-b').verify(state, expected).ok);
  });

  it('refuses an expired state, another principal, another method or other parameters', () => {
    assert.deepEqual(codec.verify(codec.mint(payload({ e: NOW })), expected), {
      ok: false,
      reason: 'expired',
    });
    const state = codec.mint(payload());
    assert.deepEqual(codec.verify(state, { ...expected, principal: 'jwt:alice\u0000svc' }), {
      ok: false,
      reason: 'foreign',
    });
    assert.deepEqual(codec.verify(state, { ...expected, method: 'prompts/get' }), {
      ok: false,
      reason: 'mismatch',
    });
    assert.deepEqual(
      codec.verify(state, { ...expected, digest: paramsDigest({ name: 't', arguments: { a: 2 } }) }),
      { ok: false, reason: 'mismatch' },
    );
  });
});

describe('paramsDigest', () => {
  it('ignores key order, _meta and the round-trip fields; not the arguments', () => {
    const base = paramsDigest({ name: 't', arguments: { a: 1, b: [1, { c: 2 }] } });
    assert.equal(
      paramsDigest({
        arguments: { b: [1, { c: 2 }], a: 1 },
        name: 't',
        _meta: { progressToken: 5 },
        inputResponses: { k: {} },
        requestState: 's',
      }),
      base,
    );
    assert.notEqual(paramsDigest({ name: 't', arguments: { a: 1, b: [{ c: 2 }, 1] } }), base);
    assert.equal(canonicalJson({ b: 1, a: [true, null] }), '{"a":[true,null],"b":1}');
  });
});
