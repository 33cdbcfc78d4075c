/**
 * What a hostile or broken client sends, as fast-check arbitraries: JSON-RPC messages of every
 * wrong shape, raw JSON text that JSON.stringify cannot produce (huge numbers, deep nesting),
 * bytes that are not UTF-8, and the pieces of an HTTP request.
 */
import * as fc from 'fast-check';

/** JSON text inserted verbatim when a value is serialised (numbers beyond double, deep nesting). */
export class RawJson {
  constructor(readonly text: string) {}
}

/** JSON.stringify that keeps RawJson verbatim and drops undefined members, as a client would. */
export function toJsonText(value: unknown): string {
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? 'null' : toJsonText(v))).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const members: string[] = [];
    for (const [k, v] of Object.entries(value)) {
      if (v !== undefined) members.push(`${JSON.stringify(k)}:${toJsonText(v)}`);
    }
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const hugeNumber = fc
  .oneof(
    fc.constantFrom(
      '1e400',
      '-1e400',
      '9007199254740993',
      '1.5',
      '-0',
      '0.1e-400',
      '1E+308',
      '-9007199254740992',
    ),
    fc.bigInt({ min: 2n ** 53n, max: 2n ** 256n }).map(String),
    fc.integer({ min: 20, max: 2000 }).map((n) => '9'.repeat(n)),
  )
  .map((t) => new RawJson(t));

/** Nesting far beyond anything MCP needs: the stack of a recursive parser or serialiser. */
export const deepNesting = fc
  .tuple(fc.integer({ min: 50, max: 12_000 }), fc.constantFrom('array', 'object', 'mixed'))
  .map(([depth, kind]) => {
    if (kind === 'array') return new RawJson('['.repeat(depth) + ']'.repeat(depth));
    if (kind === 'object') return new RawJson('{"a":'.repeat(depth) + '1' + '}'.repeat(depth));
    return new RawJson('[{"a":'.repeat(depth) + '1' + '}]'.repeat(depth));
  });

export const jsonRpcId = fc.oneof(
  { weight: 4, arbitrary: fc.integer() },
  { weight: 3, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 2, arbitrary: hugeNumber },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false) },
  { weight: 1, arbitrary: fc.oneof(fc.object({ maxDepth: 1 }), fc.array(fc.integer(), { maxLength: 3 })) },
);

export const METHODS = [
  'initialize',
  'ping',
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/read',
  'resources/subscribe',
  'prompts/list',
  'prompts/get',
  'logging/setLevel',
  'completion/complete',
  'sampling/createMessage',
  'notifications/initialized',
  'notifications/cancelled',
  'notifications/progress',
  'notifications/gateway/ack',
] as const;

const method = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...METHODS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.anything({ maxDepth: 1 }) },
);

const anything = fc.anything({ maxDepth: 2, maxKeys: 4 });

const meta = fc.oneof(
  anything,
  fc.record(
    {
      progressToken: fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), hugeNumber, anything),
      'io.modelcontextprotocol/protocolVersion': fc.constantFrom('2026-07-28', '2025-11-25', 'nope'),
      'io.modelcontextprotocol/clientCapabilities': anything,
      'io.modelcontextprotocol/clientInfo': anything,
    },
    { requiredKeys: [] },
  ),
);

const params = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  {
    weight: 6,
    arbitrary: fc.record(
      {
        name: fc.oneof(fc.constantFrom('echo', 'add', 'nope'), fc.string({ maxLength: 20 })),
        arguments: fc.oneof(fc.record({ text: fc.string({ maxLength: 40 }) }), anything),
        uri: fc.oneof(fc.constant('demo://readme'), fc.string({ maxLength: 30 })),
        protocolVersion: fc.constantFrom(
          '2025-11-25',
          '2025-06-18',
          '2025-03-26',
          '2024-11-05',
          '2026-07-28',
          'x',
        ),
        capabilities: anything,
        clientInfo: anything,
        requestId: jsonRpcId,
        seq: fc.oneof(fc.integer(), hugeNumber, anything),
        level: fc.constantFrom('debug', 'info', 'nope'),
        _meta: meta,
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 2, arbitrary: fc.array(anything, { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.oneof(fc.string(), fc.integer(), fc.constant(null), hugeNumber) },
  { weight: 2, arbitrary: deepNesting.map((deep) => ({ name: 'echo', arguments: { text: deep } })) },
  { weight: 1, arbitrary: deepNesting },
);

/** One JSON-RPC-ish message: every member may be missing or of the wrong type. */
export const message = fc.record(
  {
    jsonrpc: fc.oneof({ weight: 8, arbitrary: fc.constant('2.0') }, { weight: 1, arbitrary: anything }),
    id: fc.oneof({ weight: 3, arbitrary: jsonRpcId }, { weight: 1, arbitrary: fc.constant(undefined) }),
    method,
    params,
    result: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: anything }),
    error: fc.oneof(
      { weight: 6, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.record({ code: fc.oneof(fc.integer(), hugeNumber), message: fc.string() }) },
      { weight: 1, arbitrary: anything },
    ),
  },
  { requiredKeys: ['jsonrpc'] },
);

/** An invalid UTF-8 sequence: lone continuation bytes, overlongs, surrogates, truncations. */
export const invalidUtf8 = fc
  .constantFrom(
    [0xff],
    [0xfe],
    [0x80],
    [0xc0, 0xaf],
    [0xe0, 0x80, 0xaf],
    [0xed, 0xa0, 0x80],
    [0xf4, 0x90, 0x80, 0x80],
    [0xe2, 0x82],
  )
  .map((bytes) => Buffer.from(bytes));

/** A message body: valid messages, batches, truncations, garbage, invalid UTF-8, oversize bodies. */
export function body(maxBodyBytes: number): fc.Arbitrary<Buffer> {
  const text = (t: string) => Buffer.from(t);
  return fc.oneof(
    { weight: 6, arbitrary: message.map((m) => text(toJsonText(m))) },
    {
      weight: 2,
      arbitrary: fc.array(message, { minLength: 1, maxLength: 5 }).map((b) => text(toJsonText(b))),
    },
    { weight: 1, arbitrary: fc.constantFrom('[]', '{}', 'null', '0', '""', '[[]]', '[null]', ' ').map(text) },
    {
      weight: 2,
      arbitrary: fc.tuple(message, fc.double({ min: 0, max: 1, noNaN: true })).map(([m, at]) => {
        const t = toJsonText(m);
        return text(t.slice(0, Math.floor(t.length * at)));
      }),
    },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }).map(text) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(...METHODS), invalidUtf8, jsonRpcId)
        .map(([m, bad, id]) =>
          Buffer.concat([
            text(
              `{"jsonrpc":"2.0","id":${toJsonText(id)},"method":"${m}","params":{"name":"echo","arguments":{"text":"`,
            ),
            bad,
            text('"}}}'),
          ]),
        ),
    },
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: maxBodyBytes + 1, max: maxBodyBytes * 2 })
        .map((n) => text(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"${'x'.repeat(n)}"}}`)),
    },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => text(JSON.stringify(v) ?? 'null')) },
  );
}

// ------------------------------------------------------------------ HTTP request pieces

export const httpMethod = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('GET', 'POST', 'DELETE') },
  { weight: 2, arbitrary: fc.constantFrom('PUT', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'PROPFIND', 'SEARCH') },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z!#$%&'*+.^_`|~-]{1,12}$/) },
);

const PATHS = [
  '/mcp',
  '/mcp/demo',
  '/mcp/nope',
  '/mcp/',
  '/mcp//demo',
  '/mcp/demo/extra',
  '/MCP',
  '/sse',
  '/sse/demo',
  '/sse/nope',
  '/messages',
  '/messages/demo',
  '/ws',
  '/ws/demo',
  '/health',
  '/metrics',
  '/',
  '*',
  '/mcp/%ff',
  '/mcp/%E0%A4%A',
  '/mcp/..%2f..%2fetc%2fpasswd',
  '/sse/%00',
  '/messages/%',
];

export const QUERY_KEYS = ['sessionId', 'client_id', 'lastEventId', 'service', 'x'];

/** A query value: plain, percent-garbage, huge, non-ASCII, or (by index) a live session's id. */
export function queryValue(live: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.string({ maxLength: 20 }).map(encodeURIComponent) },
    {
      weight: 2,
      arbitrary: fc.constantFrom('%', '%zz', '%ff', '%E0%A4%A', '0', '-1', '1e400', 'a.b', '.', '..', ''),
    },
    { weight: 1, arbitrary: fc.integer({ min: 1000, max: 9000 }).map((n) => 'q'.repeat(n)) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 10 }) },
    ...(live.length > 0
      ? [{ weight: 3, arbitrary: fc.nat(live.length - 1).map((i) => encodeURIComponent(live[i])) }]
      : []),
  );
}

export function target(live: string[]): fc.Arbitrary<string> {
  const path = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...PATHS) },
    { weight: 1, arbitrary: fc.webPath() },
    { weight: 1, arbitrary: fc.string({ maxLength: 30 }).map((s) => `/${encodeURIComponent(s)}`) },
  );
  const query = fc.array(fc.tuple(fc.constantFrom(...QUERY_KEYS), queryValue(live)), { maxLength: 4 });
  return fc
    .tuple(path, query)
    .map(([p, q]) => (q.length === 0 ? p : `${p}?${q.map(([k, v]) => `${k}=${v}`).join('&')}`));
}

const HEADER_NAMES = [
  'accept',
  'content-type',
  'mcp-session-id',
  'mcp-protocol-version',
  'mcp-method',
  'mcp-name',
  'last-event-id',
  'origin',
  'x-mcp-client-id',
  'authorization',
  'cookie',
  'content-encoding',
  'expect',
  'upgrade',
  'connection',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
  'x-forwarded-for',
];

const HEADER_VALUES = [
  'application/json',
  'text/event-stream',
  'application/json, text/event-stream',
  '*/*',
  'text/plain',
  '2025-11-25',
  '2026-07-28',
  '2025-06-18',
  '2025-03-26',
  '2024-11-05',
  '1999-01-01',
  'websocket',
  'upgrade',
  'keep-alive',
  '13',
  'dGhlIHNhbXBsZSBub25jZQ==',
  'mcp',
  'http://evil.example',
  'null',
  'gzip',
  '100-continue',
  'tools/call',
  'echo',
];

/** Headers: known names with odd values, repeated, huge, non-ASCII; live session ids by index. */
export function headers(live: string[]): fc.Arbitrary<Array<[string, string | Buffer]>> {
  const name = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...HEADER_NAMES) },
    { weight: 1, arbitrary: fc.stringMatching(/^x-[a-z0-9-]{1,20}$/) },
  );
  const value: fc.Arbitrary<string | Buffer> = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...HEADER_VALUES) },
    {
      weight: 2,
      arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }).map((s) => s.replace(/[\r\n]/g, ' ')),
    },
    { weight: 1, arbitrary: fc.integer({ min: 1000, max: 20_000 }).map((n) => 'h'.repeat(n)) },
    {
      weight: 1,
      arbitrary: fc
        .uint8Array({ minLength: 1, maxLength: 20 })
        .map((b) => Buffer.from(b.map((x) => x | 0x80))),
    },
    ...(live.length > 0 ? [{ weight: 3, arbitrary: fc.nat(live.length - 1).map((i) => live[i]) }] : []),
  );
  return fc.array(fc.tuple(name, value), { maxLength: 8 });
}
