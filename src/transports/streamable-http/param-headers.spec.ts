import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkParamHeaders, decodeHeaderValue, headerParamsOf, type HeaderParam } from './param-headers';

function paramsOf(schema: unknown): readonly HeaderParam[] {
  const r = headerParamsOf(schema);
  assert.ok(r.valid, r.valid ? '' : r.reason);
  return r.params;
}

const EXECUTE_SQL = {
  type: 'object',
  properties: {
    region: { type: 'string', 'x-mcp-header': 'Region' },
    query: { type: 'string' },
  },
  required: ['region', 'query'],
};

describe('x-mcp-header annotations (2026-07-28 streamable-http §Custom Headers)', () => {
  test('reads the spec example: region → mcp-param-region', () => {
    assert.deepEqual(paramsOf(EXECUTE_SQL), [
      { path: ['region'], name: 'Region', header: 'mcp-param-region', type: 'string' },
    ]);
  });

  test('nested properties are reachable; integer and boolean are allowed', () => {
    const params = paramsOf({
      type: 'object',
      properties: {
        target: {
          type: 'object',
          properties: {
            tenant: { type: 'integer', 'x-mcp-header': 'Tenant' },
            dry: { type: 'boolean', 'x-mcp-header': 'Dry-Run' },
          },
        },
      },
    });
    assert.deepEqual(
      params.map((p) => [p.path.join('.'), p.header]),
      [
        ['target.tenant', 'mcp-param-tenant'],
        ['target.dry', 'mcp-param-dry-run'],
      ],
    );
  });

  test('no annotations: nothing to check', () => {
    assert.deepEqual(headerParamsOf({ type: 'object', properties: { a: { type: 'string' } } }), {
      valid: true,
      params: [],
    });
    assert.deepEqual(headerParamsOf(undefined), { valid: true, params: [] });
  });

  test('invalid definitions: number type, duplicates (case-insensitive), bad token, unreachable', () => {
    const invalid = [
      { type: 'object', properties: { n: { type: 'number', 'x-mcp-header': 'N' } } },
      {
        type: 'object',
        properties: {
          a: { type: 'string', 'x-mcp-header': 'Dup' },
          b: { type: 'string', 'x-mcp-header': 'dup' },
        },
      },
      { type: 'object', properties: { a: { type: 'string', 'x-mcp-header': 'has space' } } },
      { type: 'object', properties: { a: { type: 'string', 'x-mcp-header': '' } } },
      {
        type: 'object',
        properties: { list: { type: 'array', items: { type: 'string', 'x-mcp-header': 'Item' } } },
      },
      { type: 'object', anyOf: [{ properties: { a: { type: 'string', 'x-mcp-header': 'A' } } }] },
    ];
    for (const schema of invalid) assert.equal(headerParamsOf(schema).valid, false, JSON.stringify(schema));
  });
});

describe('header value decoding', () => {
  test('the spec encoding table round-trips', () => {
    assert.equal(decodeHeaderValue('us-west1'), 'us-west1');
    assert.equal(decodeHeaderValue('=?base64?SGVsbG8sIOS4lueVjA==?='), 'Hello, 世界');
    assert.equal(decodeHeaderValue('=?base64?IHBhZGRlZCA=?='), ' padded ');
    assert.equal(decodeHeaderValue('=?base64?bGluZTEKbGluZTI=?='), 'line1\nline2');
    assert.equal(decodeHeaderValue('=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?='), '=?base64?literal?=');
  });

  test('without both sentinel markers the value is literal', () => {
    assert.equal(decodeHeaderValue('SGVsbG8='), 'SGVsbG8=');
    assert.equal(decodeHeaderValue('=?base64?SGVsbG8='), '=?base64?SGVsbG8=');
    assert.equal(decodeHeaderValue('SGVsbG8=?='), 'SGVsbG8=?=');
  });

  test('malformed base64 (missing padding, foreign characters) and control characters are refused', () => {
    assert.equal(decodeHeaderValue('=?base64?SGVsbG8?='), undefined);
    assert.equal(decodeHeaderValue('=?base64?SGVs!!!bG8=?='), undefined);
    assert.equal(decodeHeaderValue('=?base64?/w==?='), undefined, 'not UTF-8');
    assert.equal(decodeHeaderValue('a\u0001b'), undefined);
    assert.equal(decodeHeaderValue('é'), undefined);
    assert.equal(decodeHeaderValue('=?base64??='), '');
  });
});

describe('checkParamHeaders', () => {
  const region = paramsOf(EXECUTE_SQL);

  test('matching plain and base64 values pass', () => {
    assert.equal(
      checkParamHeaders(region, { region: 'us-west1' }, { 'mcp-param-region': 'us-west1' }),
      undefined,
    );
    assert.equal(
      checkParamHeaders(region, { region: 'Hello' }, { 'mcp-param-region': '=?base64?SGVsbG8=?=' }),
      undefined,
    );
  });

  test('a value in the body needs its header; absent or null needs none and must have none', () => {
    assert.match(checkParamHeaders(region, { region: 'x' }, {})!, /required/);
    assert.equal(checkParamHeaders(region, {}, {}), undefined);
    assert.equal(checkParamHeaders(region, { region: null }, {}), undefined);
    assert.equal(checkParamHeaders(region, undefined, {}), undefined);
    assert.match(checkParamHeaders(region, {}, { 'mcp-param-region': 'x' })!, /no value/);
  });

  test('mismatches and malformed values are refused', () => {
    assert.match(checkParamHeaders(region, { region: 'a' }, { 'mcp-param-region': 'b' })!, /does not match/);
    assert.match(
      checkParamHeaders(region, { region: 'Hello' }, { 'mcp-param-region': '=?base64?SGVsbG8?=' })!,
      /malformed/,
    );
  });

  test('integers compare numerically, booleans as lowercase words', () => {
    const typed = paramsOf({
      type: 'object',
      properties: {
        n: { type: 'integer', 'x-mcp-header': 'N' },
        b: { type: 'boolean', 'x-mcp-header': 'B' },
      },
    });
    assert.equal(
      checkParamHeaders(typed, { n: 42, b: true }, { 'mcp-param-n': '42.0', 'mcp-param-b': 'true' }),
      undefined,
    );
    assert.match(checkParamHeaders(typed, { n: 42 }, { 'mcp-param-n': '43' })!, /does not match/);
    assert.match(checkParamHeaders(typed, { n: 42 }, { 'mcp-param-n': '4x2' })!, /does not match/);
    assert.match(checkParamHeaders(typed, { b: false }, { 'mcp-param-b': 'False' })!, /does not match/);
  });
});
