import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JsonRpcMessage, JsonRpcRequest } from '../../libs/protocol/src';
import { RequestMultiplexer, resultOf } from './request-multiplexer';

function call(id: number | string, token?: string | number): JsonRpcRequest {
  const params: Record<string, unknown> = { name: 'echo' };
  if (token !== undefined) params._meta = { progressToken: token, other: 'kept' };
  return { jsonrpc: '2.0', id, method: 'tools/call', params };
}

describe('RequestMultiplexer', () => {
  it('carries the same client id of two owners under two gateway ids and restores each exactly', () => {
    const mux = new RequestMultiplexer<string>('t-');
    const client = call(1);
    const a = mux.carry('alice', client);
    const b = mux.carry('bob', call('1'));
    assert.notEqual(a.id, b.id);
    assert.equal(typeof a.id, 'string');
    assert.deepEqual(client, call(1), 'the client’s message is not changed');
    assert.equal(mux.size, 2);

    const answerB: JsonRpcMessage = { jsonrpc: '2.0', id: b.id, result: { n: 'b' } };
    const cb = mux.answer(answerB);
    assert.equal(cb?.owner, 'bob');
    assert.equal((answerB as { id: unknown }).id, '1', 'a string stays a string');
    const answerA: JsonRpcMessage = { jsonrpc: '2.0', id: a.id, result: {} };
    assert.equal(mux.answer(answerA)?.owner, 'alice');
    assert.equal((answerA as { id: unknown }).id, 1, 'a number stays a number');
    assert.equal(mux.size, 0, 'forgotten once answered');
    assert.equal(
      mux.answer({ jsonrpc: '2.0', id: a.id, result: {} }),
      undefined,
      'a second answer is dropped',
    );
  });

  it('maps progress tokens both ways, keeping the rest of _meta', () => {
    const mux = new RequestMultiplexer<string>('t-');
    const up = mux.carry('alice', call(5, 'tok'));
    const meta = (up.params as { _meta: { progressToken: string; other: string } })._meta;
    assert.notEqual(meta.progressToken, 'tok');
    assert.equal(meta.other, 'kept');
    const note: JsonRpcMessage = {
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: meta.progressToken, progress: 1 },
    };
    assert.equal(mux.progress(note)?.owner, 'alice');
    assert.equal((note as unknown as { params: { progressToken: unknown } }).params.progressToken, 'tok');
    const stranger: JsonRpcMessage = {
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: 'tok', progress: 1 },
    };
    assert.equal(mux.progress(stranger), undefined, 'a client’s own token value is not ours');
  });

  it('a cancellation names the gateway id once; an abandoned request’s late answer is dropped', () => {
    const mux = new RequestMultiplexer<string>('t-');
    const up = mux.carry('alice', call(9, 1));
    const note = mux.cancel(up.id as string, 'bye');
    assert.deepEqual(note, {
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: up.id, reason: 'bye' },
    });
    assert.equal(mux.cancel(up.id as string, 'bye'), undefined, 'not told twice');
    assert.equal(mux.answer({ jsonrpc: '2.0', id: up.id, result: {} }), undefined);
    const other = mux.carry('bob', call(2));
    assert.equal(mux.forget(other.id as string)?.owner, 'bob');
    assert.equal(mux.size, 0);
  });

  it('finds a request by the gateway id a message names; sole() only while exactly one is carried', () => {
    const mux = new RequestMultiplexer<string>('t-');
    const a = mux.carry('alice', call(1));
    assert.equal(mux.find(undefined), undefined, 'a message that names nothing belongs to nobody');
    assert.equal(mux.sole()?.owner, 'alice');
    mux.carry('bob', call(1));
    assert.equal(mux.sole(), undefined, 'two carried: no sole request');
    assert.equal(mux.find(a.id)?.owner, 'alice');
    assert.deepEqual(
      mux.drain().map((c) => c.owner),
      ['alice', 'bob'],
    );
    assert.equal(mux.size, 0);
  });

  it('runs internal requests: answered, abandoned, timed out; their answers are not carried ones', async () => {
    const mux = new RequestMultiplexer<string>('t-', () => `own-${Math.random()}`);
    const sent: JsonRpcRequest[] = [];
    const answered = mux.internal('ping', undefined, (r) => sent.push(r));
    assert.match(String(sent[0].id), /^own-/);
    assert.equal(mux.answer({ jsonrpc: '2.0', id: sent[0].id, result: {} }), undefined);
    assert.ok(mux.internalAnswer({ jsonrpc: '2.0', id: sent[0].id, result: { ok: true } }));
    assert.deepEqual(resultOf(await answered), { ok: true });

    const abandoned = mux.internal('tools/list', { cursor: 'x' }, (r) => sent.push(r));
    assert.deepEqual(sent[1].params, { cursor: 'x' });
    mux.abandonInternal(sent[1].id, 'stream closed');
    await assert.rejects(abandoned.then(resultOf), /stream closed/);

    await assert.rejects(
      mux.internal('initialize', {}, () => undefined, 10),
      /did not answer initialize within 10 ms/,
    );
    assert.equal(mux.internalAnswer({ jsonrpc: '2.0', id: 'never-sent', result: {} }), false);
  });
});
