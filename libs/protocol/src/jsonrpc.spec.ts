import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_MAX_JSON_DEPTH, ErrorCode, exceedsDepth, idKey, parseJsonRpc } from './jsonrpc';
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
    // What MCP does not allow (issue 6, defect 11): no upstream answers these.
    ['fractional id', '{"jsonrpc":"2.0","id":1.5,"method":"ping"}', ErrorCode.InvalidRequest],
    ['id beyond 2^53', '{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}', ErrorCode.InvalidRequest],
    ['id below -2^53', '{"jsonrpc":"2.0","id":-9007199254740993,"method":"ping"}', ErrorCode.InvalidRequest],
    [
      'exponent id that is not an integer',
      '{"jsonrpc":"2.0","id":1e-3,"method":"ping"}',
      ErrorCode.InvalidRequest,
    ],
    ['fractional response id', '{"jsonrpc":"2.0","id":0.5,"result":{}}', ErrorCode.InvalidRequest],
    [
      'params an array',
      '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[]}',
      ErrorCode.InvalidParams,
    ],
    ['notification params an array', '{"jsonrpc":"2.0","method":"n","params":[1]}', ErrorCode.InvalidParams],
    [
      '_meta an array',
      '{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":[]}}',
      ErrorCode.InvalidParams,
    ],
    [
      '_meta a string',
      '{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":"m"}}',
      ErrorCode.InvalidParams,
    ],
    ['_meta null', '{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":null}}', ErrorCode.InvalidParams],
    // A progress token is a string or an integer (MCP schema `ProgressToken`); anything else no
    // upstream accepts, and a number beyond 2^53 or 1e400 (Infinity) would not survive JSON.stringify.
    [
      'progressToken beyond 2^53',
      '{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"progressToken":9007199254740993}}}',
      ErrorCode.InvalidParams,
    ],
    [
      'progressToken 1e400 (Infinity)',
      `{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"progressToken":${'9'.repeat(400)}}}}`,
      ErrorCode.InvalidParams,
    ],
    [
      'fractional progressToken',
      '{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"progressToken":1.5}}}',
      ErrorCode.InvalidParams,
    ],
    [
      'progressToken an object',
      '{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"progressToken":{}}}}',
      ErrorCode.InvalidParams,
    ],
    [
      'progressToken null',
      '{"jsonrpc":"2.0","method":"n","params":{"_meta":{"progressToken":null}}}',
      ErrorCode.InvalidParams,
    ],
    // Members JSON-RPC 2.0 does not define: the SDK's servers parse messages strictly and answer
    // nothing to such a request, and a response carrying params is neither kind.
    [
      'a request that carries error',
      '{"jsonrpc":"2.0","id":1,"method":"tools/list","error":[{"a":"b"},null]}',
      ErrorCode.InvalidRequest,
    ],
    [
      'a request that carries result',
      '{"jsonrpc":"2.0","id":"c","method":"notifications/cancelled","params":{},"result":{}}',
      ErrorCode.InvalidRequest,
    ],
    [
      'a notification that carries result',
      '{"jsonrpc":"2.0","method":"n","result":{}}',
      ErrorCode.InvalidRequest,
    ],
    [
      'a request with an unknown member',
      '{"jsonrpc":"2.0","id":1,"method":"x","foo":1}',
      ErrorCode.InvalidRequest,
    ],
    [
      'a response that carries params: null',
      '{"jsonrpc":"2.0","id":"r","params":null,"error":{"code":1,"message":"m"}}',
      ErrorCode.InvalidRequest,
    ],
    [
      'a response that carries params',
      '{"jsonrpc":"2.0","id":1,"result":{},"params":{}}',
      ErrorCode.InvalidRequest,
    ],
    [
      'batch item with array params',
      '[{"jsonrpc":"2.0","id":1,"method":"x","params":[]}]',
      ErrorCode.InvalidParams,
    ],
    [
      'nesting deeper than the default',
      `{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":${'['.repeat(64)}${']'.repeat(64)}}}`,
      ErrorCode.InvalidRequest,
    ],
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

  test('accepts what MCP allows: string ids, integer ids up to 2^53-1, negative ids, _meta objects', () => {
    for (const text of [
      '{"jsonrpc":"2.0","id":"a","method":"x","params":{"_meta":{"progressToken":1}}}',
      '{"jsonrpc":"2.0","id":"a","method":"x","params":{"_meta":{"progressToken":"t"}}}',
      '{"jsonrpc":"2.0","id":"a","method":"x","params":{"_meta":{"progressToken":-9007199254740991}}}',
      '{"jsonrpc":"2.0","id":9007199254740991,"method":"x"}',
      '{"jsonrpc":"2.0","id":-9007199254740991,"method":"x"}',
      '{"jsonrpc":"2.0","id":0,"method":"x","params":{}}',
      '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m"}}',
    ]) {
      assert.ok(parseJsonRpc(text).ok, text);
    }
  });

  test('an error names the id only when it is one the client can match', () => {
    const arrayParams = parseJsonRpc('{"jsonrpc":"2.0","id":7,"method":"x","params":[]}');
    assert.ok(!arrayParams.ok);
    if (!arrayParams.ok) {
      assert.equal(arrayParams.error.id, 7);
      assert.match(arrayParams.error.error.message, /^Invalid params: params must be an object/);
    }
    const token = parseJsonRpc(
      '{"jsonrpc":"2.0","id":8,"method":"x","params":{"_meta":{"progressToken":1e400}}}',
    );
    assert.ok(!token.ok);
    if (!token.ok) {
      assert.equal(token.error.id, 8);
      assert.match(
        token.error.error.message,
        /^Invalid params: _meta\.progressToken must be a string or an integer/,
      );
    }
    const fractional = parseJsonRpc('{"jsonrpc":"2.0","id":1.5,"method":"x"}');
    assert.ok(!fractional.ok);
    if (!fractional.ok) assert.equal(fractional.error.id, null);
  });

  test('the depth bound counts nesting, not brackets, and ignores brackets inside strings', () => {
    const depth = (d: number) => `${'['.repeat(d)}${']'.repeat(d)}`;
    // A message is one level; params another; so 62 nested arrays inside params make 64.
    const at = `{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":${depth(62)}}}`;
    assert.ok(parseJsonRpc(at).ok, 'exactly the limit passes');
    assert.equal(DEFAULT_MAX_JSON_DEPTH, 64);
    const over = `{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":${depth(63)}}}`;
    const r = parseJsonRpc(over);
    assert.ok(!r.ok);
    if (!r.ok) {
      assert.equal(r.error.error.code, ErrorCode.InvalidRequest);
      assert.match(r.error.error.message, /nested deeper than 64 levels/);
    }
    // Many brackets side by side are shallow: the exact scan runs and lets them through.
    const wide = `{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":[${Array(500).fill('[{}]').join(',')}]}}`;
    assert.ok(parseJsonRpc(wide).ok);
    // Brackets in strings (with escaped quotes before them) do not count.
    const params = { s: `\\"${'['.repeat(200)}`, t: `${'{'.repeat(200)}\\` };
    const inString = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'x', params });
    assert.ok(parseJsonRpc(inString).ok, inString.slice(0, 60));
    assert.equal(exceedsDepth(inString, 3), false);
    assert.equal(exceedsDepth(depth(4), 3), true);
    assert.equal(exceedsDepth(depth(3), 3), false);
    // A batch is one more level.
    assert.equal(exceedsDepth(`[${at}]`, 64), true);
    // The limit is the caller's.
    assert.ok(parseJsonRpc(over, 65).ok);
  });

  test('a body nested 100,000 deep is refused without parsing it', () => {
    const r = parseJsonRpc(`[${'['.repeat(100_000)}${']'.repeat(100_000)}]`);
    assert.ok(!r.ok);
    if (!r.ok) assert.equal(r.error.error.code, ErrorCode.InvalidRequest);
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
