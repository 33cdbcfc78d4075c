import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode, idKey, parseJsonRpc } from './jsonrpc';
import { formatEventId, parseEventId } from './event-id';

describe('parseJsonRpc', () => {
  const bad: Array<[string, string, number]> = [
    ['truncated JSON', '{"jsonrpc":"2.0",', ErrorCode.ParseError],
    ['not JSON at all', 'hello', ErrorCode.ParseError],
    ['a number', '42', ErrorCode.InvalidRequest],
    ['missing jsonrpc', '{"id":1,"method":"ping"}', ErrorCode.InvalidRequest],
    ['wrong version', '{"jsonrpc":"1.0","id":1,"method":"ping"}', ErrorCode.InvalidRequest],
    ['method not a string', '{"jsonrpc":"2.0","id":1,"method":5}', ErrorCode.InvalidRequest],
    ['object id', '{"jsonrpc":"2.0","id":{},"method":"ping"}', ErrorCode.InvalidRequest],
    ['null request id', '{"jsonrpc":"2.0","id":null,"method":"ping"}', ErrorCode.InvalidRequest],
    ['params a string', '{"jsonrpc":"2.0","id":1,"method":"x","params":"p"}', ErrorCode.InvalidRequest],
    [
      'result and error',
      '{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"m"}}',
      ErrorCode.InvalidRequest,
    ],
    ['response without id', '{"jsonrpc":"2.0","result":{}}', ErrorCode.InvalidRequest],
    ['error without code', '{"jsonrpc":"2.0","id":1,"error":{"message":"m"}}', ErrorCode.InvalidRequest],
    ['empty batch', '[]', ErrorCode.InvalidRequest],
    ['batch with a bad item', '[{"jsonrpc":"2.0","method":"a"},{"x":1}]', ErrorCode.InvalidRequest],
  ];
  for (const [name, text, code] of bad) {
    test(`rejects ${name} with ${code}`, () => {
      const r = parseJsonRpc(text);
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.error.error.code, code);
    });
  }

  test('keeps the id of an invalid request so the client can match the error', () => {
    const r = parseJsonRpc('{"jsonrpc":"2.0","id":"abc","method":7}');
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.error.id, 'abc');
  });

  test('classifies requests, notifications, responses and batches', () => {
    const r = parseJsonRpc(
      '[{"jsonrpc":"2.0","id":"1","method":"tools/list"},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":2,"result":{}}]',
    );
    assert.ok(r.ok);
    if (r.ok) {
      assert.equal(r.batch, true);
      assert.equal(r.messages.length, 3);
    }
  });

  test('idKey keeps string and number ids apart', () => {
    assert.notEqual(idKey(1), idKey('1'));
  });
});

describe('event ids', () => {
  test('round-trip stream and sequence', () => {
    assert.deepEqual(parseEventId(formatEventId(3, 17)), { stream: 3, seq: 17 });
    assert.deepEqual(parseEventId('42'), { stream: undefined, seq: 42 });
  });
  test('reject garbage', () => {
    for (const bad of ['', 'x', '1_', '_1', '1_2_3', '-1', '1e5'])
      assert.equal(parseEventId(bad), undefined, bad);
  });
});
