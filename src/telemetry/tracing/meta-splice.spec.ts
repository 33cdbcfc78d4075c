import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { spliceMeta } from './meta-splice';

const META = '{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}';
const meta = JSON.parse(META) as unknown;

/** The splice gives what JSON.parse of the original plus the new _meta would. */
function spliced(text: string): unknown {
  const out = spliceMeta(text, META);
  assert.ok(out !== undefined, `spliced: ${text}`);
  return JSON.parse(out);
}

describe('spliceMeta', () => {
  test('adds params when there are none', () => {
    assert.deepEqual(spliced('{"jsonrpc":"2.0","id":1,"method":"tools/list"}'), {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/list',
      params: { _meta: meta },
    });
    assert.deepEqual(spliced(' { "jsonrpc" : "2.0" , "id" : 1 , "method" : "ping" } \n'), {
      jsonrpc: '2.0',
      id: 1,
      method: 'ping',
      params: { _meta: meta },
    });
  });

  test('adds _meta to params, empty or not, keeping every other byte', () => {
    const text =
      '{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo","arguments":{"s":"x"}}}';
    const out = spliceMeta(text, META)!;
    assert.equal(out, text.replace('"params":{', `"params":{"_meta":${META},`));
    assert.deepEqual(spliced('{"id":1,"method":"m","params":{}}'), {
      id: 1,
      method: 'm',
      params: { _meta: meta },
    });
    assert.deepEqual(spliced('{"id":1,"method":"m","params":{ }}'), {
      id: 1,
      method: 'm',
      params: { _meta: meta },
    });
  });

  test('replaces an existing _meta, wherever it is among the params', () => {
    assert.deepEqual(
      spliced(
        '{"id":1,"method":"m","params":{"a":[1,{"b":"}"}],"_meta":{"traceparent":"old","k":1},"z":null}}',
      ),
      { id: 1, method: 'm', params: { a: [1, { b: '}' }], _meta: meta, z: null } },
    );
  });

  test('is not fooled by look-alikes inside strings and nested objects', () => {
    const text =
      '{"id":"\\"params\\":{","method":"m","x":{"params":{"_meta":1}},"params":{"s":"\\\\","arguments":{"_meta":{}}}}';
    assert.deepEqual(spliced(text), {
      id: '"params":{',
      method: 'm',
      x: { params: { _meta: 1 } },
      params: { _meta: meta, s: '\\', arguments: { _meta: {} } },
    });
  });

  test('declines what a simple scan could misread: escaped or duplicated keys, non-object params', () => {
    for (const text of [
      '{"id":1,"method":"m","par\\u0061ms":{"a":1}}',
      '{"id":1,"method":"m","params":{"_m\\u0065ta":{}}}',
      '{"id":1,"method":"m","params":{"a":1},"params":{"b":2}}',
      '{"id":1,"method":"m","params":{"_meta":{},"_meta":{}}}',
      '{"id":1,"method":"m","params":[1,2]}',
      '[{"id":1,"method":"m"}]',
    ]) {
      assert.equal(spliceMeta(text, META), undefined, text);
    }
    // A _meta that is not an object is replaced like any other value.
    assert.deepEqual(spliced('{"id":1,"method":"m","params":{"_meta":"x"}}'), {
      id: 1,
      method: 'm',
      params: { _meta: meta },
    });
  });
});
