/**
 * Hostile input against authentication, rate limits, authorization and the admin API (the review
 * of session 6's landing). Each test sends what an attacker would and asserts what a user sees: a
 * clear status or JSON-RPC error, bounded state, a good client still served afterwards, and no
 * unhandled rejection or uncaught exception anywhere in the file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { WebSocket } from 'ws';
import { bootstrap } from '../src/bootstrap';
import { DashboardService } from '../src/ops/dashboard/dashboard.service';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { StatsSampler } from '../src/ops/stats/stats-sampler.service';
import { MessagePolicy } from '../src/policy/message-policy';
import { ConfigReloadService } from '../src/ops/admin/config-reload.service';
import { VsmBus } from '../src/vsm/vsm-bus.service';
import { apiKeyDigest, WS_TOKEN_PREFIX } from '../src/policy/identity';
import { makeSelfSignedCert } from './helpers/certs';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { connectAs } from './helpers/policy-clients';
import { raw } from './helpers/streamable-http-client';
import { inBatches } from './helpers/batches';

type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });

/** What would end the process (with no listener, Node exits on either); checked at the end of the file. */
const fatal: unknown[] = [];
const onFatal = (err: unknown) => fatal.push(err);
before(() => {
  process.on('unhandledRejection', onFatal);
  process.on('uncaughtException', onFatal);
});
after(() => {
  process.off('unhandledRejection', onFatal);
  process.off('uncaughtException', onFatal);
  assert.deepEqual(fatal, [], 'no unhandled rejection or uncaught exception');
});

const VERSION = '2025-11-25';
const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'hostile', version: '1' } },
});
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

/** A WebSocket upgrade: 101 with the chosen subprotocol (then closed), or the refusal's status and body. */
function upgrade(
  base: string,
  headers: Record<string, string>,
): Promise<{ status: number; protocol?: string; body?: string }> {
  return new Promise((resolve, reject) => {
    // Sec-WebSocket-Protocol is set by hand, so ws's own checks on the offered list do not stop the test.
    const ws = new WebSocket(new URL('/ws', base.replace('http', 'ws')), { headers });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on('upgrade', (res) => {
      // The client offered no list of its own, so ws will drop the connection: the 101 is the answer.
      resolve({ status: 101, protocol: res.headers['sec-websocket-protocol'] as string | undefined });
    });
    ws.on('error', (err) => {
      if (!/Unexpected server response|Server sent a subprotocol/.test(err.message)) reject(err);
    });
  });
}

/** The raw bytes of one request (for what node:http will not send: two Authorization headers). */
function rawExchange(base: string, text: string): Promise<string> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => socket.end(text));
    let answer = '';
    socket.on('data', (c: Buffer) => (answer += c.toString('latin1')));
    socket.on('end', () => resolve(answer));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
}

describe('authorization globs against a long hostile name', () => {
  let gw: RunningGateway;
  before(async () => {
    // Several stars: a backtracking RegExp (`^.*a.*a.*key.*$`) takes cubic time on `aaaa…`.
    gw = await startGateway({ clients: { globbed: { tools: { allow: ['echo', '*a*a*key*'] } } } });
  });
  after(() => gw.close());

  test('a 4,000-character tool name is refused at once (−32602); the event loop is not held', async () => {
    const { client } = await connectAs(gw.url, 'ws', 'globbed');
    try {
      const started = Date.now();
      const err = await client.callTool({ name: 'a'.repeat(4000), arguments: {} }).then(
        () => assert.fail('the call must be refused'),
        (e: unknown) => e,
      );
      const elapsed = Date.now() - started;
      assert.ok(err instanceof McpError, String(err));
      assert.equal(err.code, -32602);
      assert.match(err.message, /is not allowed for this client/);
      // Milliseconds with a linear matcher; the regex took ~13 s here (and grows with the cube of the length).
      assert.ok(elapsed < 3000, `the refusal took ${elapsed} ms`);
      const ok = await client.callTool({ name: 'echo', arguments: { text: 'still served' } });
      assert.ok(JSON.stringify(ok.content).includes('still served'));
    } finally {
      await client.close();
    }
  });
});

describe('the admin API rate limit against claimed client ids', () => {
  const ADMIN = 'an-admin-token-long-enough-0123';
  const ALICE = 'alice-key-0123456789abcdef0123';
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway(
      {
        rateLimit: { enabled: true, perSecond: 0.2, burst: 3 },
        clients: { alice: { apiKeys: [apiKeyDigest(ALICE)], disabled: false } },
      },
      { ADMIN_TOKEN: ADMIN, AUTH_MODE: 'api_key' },
    );
  });
  after(() => gw.close());

  const adminGet = (headers: Record<string, string>) =>
    fetch(`${gw.url}/admin/services`, { headers }).then(async (r) => (await r.arrayBuffer(), r.status));

  test("unauthenticated admin calls naming a client do not spend that client's MCP budget", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push(await adminGet({ 'x-mcp-client-id': 'alice' }));
    assert.deepEqual(statuses, [401, 401, 401, 429, 429, 429]);
    // Alice's own budget (3) is whole: her MCP requests are served.
    for (let i = 0; i < 3; i++) {
      const res = await raw(gw.url, { headers: { ...MCP_HEADERS, 'x-api-key': ALICE }, body: INIT });
      assert.equal(res.status, 200, res.text);
    }
  });

  test('a new claimed id per request does not dodge the limit, and 10,000 of them add no bucket', async () => {
    const policy = gw.gateway.app.get(MessagePolicy);
    const before = policy.limiter.size;
    const ids = Array.from({ length: 10_000 }, (_, i) => `spoofed-${i}`);
    const statuses = await inBatches(ids, 16, (id) => adminGet({ 'x-mcp-client-id': id }));
    // The address bucket is empty (the previous test); at 0.2/s a few tokens come back meanwhile.
    const refused = statuses.filter((s) => s === 429).length;
    assert.ok(refused >= 9_950, `${refused} of 10,000 refused`);
    assert.ok(policy.limiter.size <= before + 1, `${policy.limiter.size} buckets after (${before} before)`);
  });
});

describe('admin API bodies and names', () => {
  const ADMIN = 'an-admin-token-long-enough-0123';
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway({}, { ADMIN_TOKEN: ADMIN });
  });
  after(() => gw.close());

  const call = async (method: string, path: string, body?: string) => {
    const res = await fetch(`${gw.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body,
    });
    return { status: res.status, text: await res.text() };
  };
  const replica = JSON.stringify({
    replicas: [{ transport: 'streamable-http', url: 'http://127.0.0.1:9/mcp' }],
  });

  test('POST /admin/services/__proto__ and names no route can reach are 400, not 500', async () => {
    for (const name of ['__proto__', 'a%20b', '..%2Fetc', '%F0%9F%92%A5']) {
      const res = await call('POST', `/admin/services/${name}`, replica);
      assert.equal(res.status, 400, `${name}: ${res.text}`);
      assert.match(res.text, /service names are/);
    }
    assert.equal(gw.gateway.app.get(GatewayMetrics).internalErrors.size, 0);
    const listed = JSON.parse((await call('GET', '/admin/services')).text) as {
      services: { name: string }[];
    };
    assert.deepEqual(
      listed.services.map((s) => s.name),
      ['demo'],
    );
  });

  test('prototype keys, wrong types, deep nesting and huge bodies are 4xx; nothing is polluted', async () => {
    const cases: Array<[string, string, string, number]> = [
      ['POST', '/admin/services/p1', '{"__proto__":{"polluted":1},"replicas":[]}', 400],
      ['POST', '/admin/services/p2', '{"constructor":{"prototype":{"polluted":1}},"replicas":[]}', 400],
      ['PATCH', '/admin/services/demo', '{"__proto__":{"mode":"pooled"}}', 400],
      ['PATCH', '/admin/services/demo', 'null', 400],
      ['PATCH', '/admin/services/demo', '{"mode":5}', 400],
      ['POST', '/admin/services/p3', '{"replicas":"nope"}', 400],
      ['POST', '/admin/services/p4', `{"replicas":${'['.repeat(50_000)}${']'.repeat(50_000)}}`, 400],
      ['POST', '/admin/services/p5', '{"replicas":[', 400],
      ['POST', '/admin/services/p6', `"${'x'.repeat(5 * 1024 * 1024)}"`, 413],
    ];
    for (const [method, path, body, status] of cases) {
      const res = await call(method, path, body);
      assert.equal(res.status, status, `${method} ${path} ${body.slice(0, 40)}: ${res.text.slice(0, 200)}`);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(({} as Record<string, unknown>).mode, undefined);
    const demo = JSON.parse((await call('GET', '/admin/services')).text) as { services: { mode: string }[] };
    assert.equal(demo.services[0].mode, 'dedicated');
  });

  test('PUT /admin/log-levels: inherited names, bad module names and endless modules are 400', async () => {
    const before = JSON.parse((await call('GET', '/admin/log-levels')).text) as { default: string };
    try {
      for (const body of [
        '{"default":"toString"}',
        '{"default":"constructor"}',
        '{"modules":{"Session":"hasOwnProperty"}}',
        '{"modules":{"a b":"debug"}}',
        '{"modules":[1]}',
        JSON.stringify({
          modules: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`M${i}`, 'debug'])),
        }),
      ]) {
        const res = await call('PUT', '/admin/log-levels', body);
        assert.equal(res.status, 400, `${body.slice(0, 60)}: ${res.text}`);
      }
      assert.deepEqual(JSON.parse((await call('GET', '/admin/log-levels')).text), {
        default: before.default,
        modules: {},
      });
      assert.equal((await call('PUT', '/admin/log-levels', '{"modules":{"Session":"debug"}}')).status, 200);
    } finally {
      await call(
        'PUT',
        '/admin/log-levels',
        JSON.stringify({ default: before.default, modules: { Session: null } }),
      );
    }
  });
});

describe('OAuth audience and the Host header', () => {
  test('oauth on a public bind with no PUBLIC_URL, AUTH_JWT_AUDIENCE or ALLOWED_HOSTS refuses to start', async () => {
    const env = {
      LOG_LEVEL: 'silent',
      AUTH_MODE: 'oauth',
      AUTH_JWT_SECRET: 's'.repeat(40),
      AUTH_AUTHORIZATION_SERVERS: 'https://issuer.test',
    };
    // Else `Host: other-server.example` would make a token for https://other-server.example/mcp acceptable.
    await assert.rejects(
      bootstrap({ env, config: { host: '0.0.0.0', port: 0 } }),
      /PUBLIC_URL, AUTH_JWT_AUDIENCE or ALLOWED_HOSTS/,
    );
    for (const extra of [
      { PUBLIC_URL: 'https://gw.example' },
      { AUTH_JWT_AUDIENCE: 'https://gw.example/mcp' },
      { ALLOWED_HOSTS: 'gw.example' },
    ]) {
      const gw = await bootstrap({ env: { ...env, ...extra }, config: { host: '0.0.0.0', port: 0 } });
      await gw.app.close();
    }
  });
});

describe('hostile JWTs against a JWKS', () => {
  let jose: Jose;
  let jwks: { url: string; fetches: number; close(): Promise<void> };
  let gw: RunningGateway;
  let good: string;
  let publicPem: string;
  let sign: (header: Record<string, unknown>, claims?: Record<string, unknown>) => Promise<string>;
  const ISSUER = 'https://issuer.test';
  const AUD = 'https://gw.test/mcp';
  const b64 = (v: unknown) =>
    Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
  const claims = () => ({
    sub: 'carol',
    iss: ISSUER,
    aud: AUD,
    iat: Math.floor(Date.now() / 1000),
    exp: Math.floor(Date.now() / 1000) + 600,
  });

  before(async () => {
    const specifier = 'jose';
    jose = (await import(specifier)) as Jose;
    const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true });
    const jwk = { ...(await jose.exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    publicPem = await jose.exportSPKI(publicKey);
    const state = { fetches: 0 };
    const server: Server = createServer((_req, res) => {
      state.fetches++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    jwks = {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
      get fetches() {
        return state.fetches;
      },
      close: () => new Promise((r) => server.close(() => r())),
    };
    sign = (header, extra = {}) =>
      new jose.SignJWT({ ...claims(), ...extra })
        .setProtectedHeader(header as { alg: string })
        .sign(privateKey);
    gw = await startGateway(
      {},
      { AUTH_MODE: 'jwt', AUTH_JWKS_URL: jwks.url, AUTH_JWT_ISSUER: ISSUER, AUTH_JWT_AUDIENCE: AUD },
    );
    good = await sign({ alg: 'RS256', kid: 'k1' });
  });
  after(async () => {
    await gw?.close();
    await jwks?.close();
  });

  const post = (authorization: string) =>
    raw(gw.url, { headers: { ...MCP_HEADERS, authorization }, body: INIT });
  const reasonOf = (res: { json: any }) => res.json?.error?.data?.reason as string | undefined;

  test('alg none, HS256 keyed with the RSA public key, crit, an object kid and a jku URL are 401', async () => {
    const forged = [
      `${b64({ alg: 'none' })}.${b64(claims())}.`,
      `${b64({ alg: 'none', kid: 'k1' })}.${b64(claims())}.`,
      await new jose.SignJWT(claims())
        .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
        .sign(new TextEncoder().encode(publicPem)),
      `${b64({ alg: 'RS256', kid: 'k1', crit: ['exp'] })}.${b64(claims())}.${b64('sig')}`,
      `${b64({ alg: 'RS256', kid: { $ne: 1 } })}.${b64(claims())}.${b64('sig')}`,
    ];
    // A key set the token points at itself (jku / x5u) is never fetched: only AUTH_JWKS_URL is.
    let attackerHits = 0;
    const attacker = createServer((_req, res) => {
      attackerHits++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys":[]}');
    });
    await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', r));
    const attackerUrl = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}/jwks`;
    forged.push(await sign({ alg: 'RS256', kid: 'attacker', jku: attackerUrl, x5u: attackerUrl }));
    for (const token of forged) {
      const res = await post(`Bearer ${token}`);
      assert.equal(res.status, 401, `${token.slice(0, 40)}: ${res.text}`);
      assert.ok(reasonOf(res) !== undefined && reasonOf(res) !== 'jwks_unavailable', res.text);
    }
    await new Promise((r) => attacker.close(r));
    assert.equal(attackerHits, 0, 'the URL in the token was fetched');
    assert.equal((await post(`Bearer ${good}`)).status, 200);
  });

  test('1,000 tokens naming unknown kids fetch the key set at most once more (the cooldown)', async () => {
    const before = jwks.fetches;
    const tokens = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => sign({ alg: 'RS256', kid: `unknown-${i}-${'k'.repeat(200)}` })),
    );
    const answers = await inBatches(tokens, 16, (t) => post(`Bearer ${t}`));
    assert.ok(
      answers.every((a) => a.status === 401 && reasonOf(a) === 'unknown_key'),
      answers.find((a) => a.status !== 401)?.text,
    );
    assert.ok(jwks.fetches - before <= 1, `${jwks.fetches - before} JWKS fetches`);
    assert.equal((await post(`Bearer ${good}`)).status, 200);
  });

  test('an 11 KB token is served, a forged one a clean 401, one past MAX_HEADER_BYTES a 431; two Authorization headers: the first counts', async () => {
    const big = await sign({ alg: 'RS256', kid: 'k1' }, { pad: 'x'.repeat(7_500) });
    assert.equal((await post(`Bearer ${big}`)).status, 200, 'a large but valid token is served');
    const bigForged = `${b64({ alg: 'RS256', kid: 'k1' })}.${b64({ pad: 'x'.repeat(9000) })}.${b64('s')}`;
    assert.equal((await post(`Bearer ${bigForged}`)).status, 401);
    const huge = `${b64({ alg: 'RS256', kid: 'k1' })}.${'A'.repeat(40_000)}.${b64('s')}`;
    assert.equal((await post(`Bearer ${huge}`)).status, 431);

    const url = new URL(gw.url);
    const request = (first: string, second: string) =>
      rawExchange(
        gw.url,
        `POST /mcp HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\n` +
          `Accept: application/json, text/event-stream\r\nAuthorization: Bearer ${first}\r\n` +
          `Authorization: Bearer ${second}\r\nContent-Length: ${Buffer.byteLength(INIT)}\r\nConnection: close\r\n\r\n${INIT}`,
      );
    assert.match(await request('not-a-token', good), /^HTTP\/1\.1 401 /);
    assert.match(await request(good, 'not-a-token'), /^HTTP\/1\.1 200 /);
  });

  test('WebSocket subprotocol abuse: thousands of entries, long or broken tokens, a token without mcp', async () => {
    const auth = { authorization: `Bearer ${good}` };
    const many = Array.from({ length: 1500 }, (_, i) => `p${i}`).join(', ');
    const manyMcp = await upgrade(gw.url, { ...auth, 'sec-websocket-protocol': `${many}, mcp` });
    assert.equal(manyMcp.status, 101);
    assert.equal(manyMcp.protocol, 'mcp');
    assert.equal((await upgrade(gw.url, { ...auth, 'sec-websocket-protocol': 'mcp, mcp' })).status, 400);
    const longToken = `${WS_TOKEN_PREFIX}${'A'.repeat(12_000)}`;
    assert.equal((await upgrade(gw.url, { 'sec-websocket-protocol': `mcp, ${longToken}` })).status, 401);
    assert.equal(
      (await upgrade(gw.url, { 'sec-websocket-protocol': `mcp, ${WS_TOKEN_PREFIX}%%%` })).status,
      401,
    );
    const tooLong = await upgrade(gw.url, {
      'sec-websocket-protocol': `mcp, ${WS_TOKEN_PREFIX}${'A'.repeat(40_000)}`,
    });
    assert.equal(tooLong.status, 431);
    // Offered without `mcp`: refused, and the refusal does not repeat the token it carried.
    const secret = Buffer.from(good).toString('base64url');
    const noMcp = await upgrade(gw.url, { 'sec-websocket-protocol': `${WS_TOKEN_PREFIX}${secret}, other` });
    assert.equal(noMcp.status, 400);
    assert.ok(!noMcp.body!.includes(secret.slice(0, 40)), noMcp.body);
    const viaToken = await upgrade(gw.url, { 'sec-websocket-protocol': `mcp, ${WS_TOKEN_PREFIX}${secret}` });
    assert.deepEqual(viaToken, { status: 101, protocol: 'mcp' });
  });
});

describe('a dashboard stream that never reads', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway();
  });
  after(() => gw.close());

  test('is let go once a megabyte of frames waits for it; a page that comes back is sent the recent frames', async () => {
    const dashboard = gw.gateway.app.get(DashboardService);
    const sampler = gw.gateway.app.get(StatsSampler);
    const url = new URL('/dashboard/stream', gw.url);
    const open = (onData?: (text: string) => void) =>
      new Promise<ReturnType<typeof request>>((resolve, reject) => {
        const req = request({ host: url.hostname, port: url.port, path: url.pathname }, (res) => {
          if (onData) {
            res.setEncoding('utf8');
            res.on('data', onData);
          } else res.pause(); // never reads: the kernel's buffers fill, then the gateway's
          resolve(req);
        });
        req.on('error', (err) => (onData ? reject(err) : undefined));
        req.end();
      });
    const stalled = await open();
    while (dashboard.openStreams < 1) await new Promise((r) => setTimeout(r, 10));

    // Samples as fast as the test can take them (~1 KB each): tens of megabytes in a few seconds.
    let ticks = 0;
    const deadline = Date.now() + 60_000;
    while (dashboard.openStreams > 0 && Date.now() < deadline) {
      for (let i = 0; i < 50; i++) sampler.tick();
      ticks += 50;
      await new Promise((r) => setImmediate(r));
    }
    stalled.destroy();
    assert.equal(dashboard.openStreams, 0, `the stalled stream is still held after ${ticks} samples`);

    let text = '';
    const again = await open((chunk) => (text += chunk));
    while (!text.includes('data: ')) await new Promise((r) => setTimeout(r, 10));
    assert.equal(dashboard.openStreams, 1);
    again.destroy();
  });
});

describe('a leaked API key removed from gateway.yaml', () => {
  test('stops working at the next request once the edit is applied; a client set disabled is refused', async () => {
    const OLD = 'alice-leaked-key-0123456789abcdef';
    const NEW = 'alice-fresh-key-0123456789abcdef';
    const BOB = 'bob-key-0123456789abcdef01234567';
    const file = join(mkdtempSync(join(tmpdir(), 'gw-keys-')), 'gateway.yaml');
    const services = 'services:\n  demo:\n    replicas:\n      - transport: embedded\n';
    const clients = (aliceKeys: string[], bobDisabled: boolean) =>
      `${services}clients:\n  alice:\n    apiKeys: [${aliceKeys.map((k) => `'${apiKeyDigest(k)}'`).join(', ')}]\n` +
      `  bob:\n    apiKeys: ['${apiKeyDigest(BOB)}']\n    disabled: ${bobDisabled}\n`;
    writeFileSync(file, clients([OLD, NEW], false));
    const gw = await startGateway(
      {},
      { GATEWAY_CONFIG: file, GATEWAY_CONFIG_WATCH: 'false', AUTH_MODE: 'api_key' },
    );
    try {
      const as = (key: string) => raw(gw.url, { headers: { ...MCP_HEADERS, 'x-api-key': key }, body: INIT });
      assert.equal((await as(OLD)).status, 200);
      assert.equal((await as(BOB)).status, 200);
      writeFileSync(file, clients([NEW], true));
      await gw.gateway.app.get(ConfigReloadService).reload();
      const leaked = await as(OLD);
      assert.equal(leaked.status, 401, leaked.text);
      assert.equal(leaked.json.error.data.reason, 'invalid_api_key');
      assert.equal((await as(NEW)).status, 200);
      const bob = await as(BOB);
      assert.equal(bob.status, 403, bob.text);
      assert.equal(bob.json.error.data.reason, 'client_disabled');
    } finally {
      await gw.close();
    }
  });
});

describe('revoked credentials end the sessions opened with them', () => {
  const OLD = 'alice-leaked-key-0123456789abcdef';
  const NEW = 'alice-fresh-key-0123456789abcdef';
  const BOB = 'bob-key-0123456789abcdef01234567';
  const CAROL = 'carol-key-0123456789abcdef012345';
  const DAVE = 'dave-key-0123456789abcdef0123456';
  const ERIN = 'erin-key-0123456789abcdef0123456';
  const services = 'services:\n  demo:\n    replicas:\n      - transport: embedded\n';
  const yaml = (aliceKeys: string[], bobDisabled: boolean) =>
    `${services}clients:\n  alice:\n    apiKeys: [${aliceKeys.map((k) => `'${apiKeyDigest(k)}'`).join(', ')}]\n` +
    `  bob:\n    apiKeys: ['${apiKeyDigest(BOB)}']\n    disabled: ${bobDisabled}\n` +
    `  carol:\n    apiKeys: ['${apiKeyDigest(CAROL)}']\n` +
    `  dave:\n    apiKeys: ['${apiKeyDigest(DAVE)}']\n` +
    `  erin:\n    apiKeys: ['${apiKeyDigest(ERIN)}']\n`;
  let gw: RunningGateway;
  let file: string;
  before(async () => {
    file = join(mkdtempSync(join(tmpdir(), 'gw-revoke-')), 'gateway.yaml');
    writeFileSync(file, yaml([OLD, NEW], false));
    // No initialize deadline: these connections only hold their streams open.
    gw = await startGateway(
      {},
      { GATEWAY_CONFIG: file, GATEWAY_CONFIG_WATCH: 'false', AUTH_MODE: 'api_key', INIT_DEADLINE_MS: '0' },
    );
  });
  after(() => gw.close());

  interface Ended {
    /** The WebSocket close code and reason, or the closeCode and message of the SSE stream's last error event. */
    code: number;
    reason: string;
  }
  /**
   * An SSE response's end: the close code its last `error` event carries (0: it ended without one).
   * A GET, or with `body` a POST whose answer is streamed.
   */
  function streamEnd(
    url: URL,
    headers: Record<string, string>,
    body?: string,
  ): { opened: Promise<number>; ended: Promise<Ended> } {
    let opened!: (status: number) => void;
    const openedP = new Promise<number>((r) => (opened = r));
    const ended = new Promise<Ended>((resolve, reject) => {
      const r = request(
        url,
        body === undefined
          ? { method: 'GET', headers: { ...headers, accept: 'text/event-stream' } }
          : { method: 'POST', headers: { ...MCP_HEADERS, ...headers } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            text += chunk;
            if (text.includes('\n\n')) opened(res.statusCode ?? 0);
          });
          res.on('end', () => {
            const last = /event: error\ndata: (.*)\n/.exec(text);
            if (!last) return resolve({ code: 0, reason: text });
            const error = JSON.parse(last[1]) as { closeCode: number; message: string };
            resolve({ code: error.closeCode, reason: error.message });
          });
        },
      );
      r.on('error', reject);
      r.end(body);
    });
    return { opened: openedP, ended };
  }

  /** A WebSocket, a legacy SSE stream and a Streamable HTTP session with its GET stream, all opened with `key`. */
  async function openAll(key: string) {
    const ws = new WebSocket(new URL('/ws', gw.url.replace('http', 'ws')), ['mcp'], {
      headers: { 'x-api-key': key },
    });
    const wsEnded = new Promise<Ended>((resolve) =>
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })),
    );
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const sse = streamEnd(new URL('/sse', gw.url), { 'x-api-key': key });
    assert.equal(await sse.opened, 200);
    const init = await raw(gw.url, { headers: { ...MCP_HEADERS, 'x-api-key': key }, body: INIT });
    assert.equal(init.status, 200, init.text);
    const sessionId = String(init.headers['mcp-session-id']);
    const sessionHeaders = { 'x-api-key': key, 'mcp-session-id': sessionId, 'mcp-protocol-version': VERSION };
    const get = streamEnd(new URL('/mcp', gw.url), sessionHeaders);
    assert.equal(await get.opened, 200);
    return { ws, wsEnded, sseEnded: sse.ended, getEnded: get.ended, sessionHeaders };
  }

  const list = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
  /**
   * 'open' unless `p` (a channel's end) has settled by the next turn of the event loop. Asked once
   * the refusals meant were counted and their ends seen: the gateway closes every channel whose
   * credential no longer holds in one pass, each counted in authRefusals.
   */
  const stillOpen = (p: Promise<unknown>) =>
    Promise.race([p.then(() => 'ended'), new Promise((r) => setImmediate(() => r('open')))]);
  /** Live channels closed so far for a revoked key or client, by reason. */
  const revoked = () => {
    const refusals = gw.gateway.app.get(GatewayMetrics).authRefusals;
    return { key: refusals.get('key_revoked') ?? 0, client: refusals.get('client_revoked') ?? 0 };
  };

  test('a key removed from gateway.yaml closes its WebSocket 4401 and ends its SSE and GET streams; a disabled client gets 4403', async () => {
    const leaked = await openAll(OLD);
    const fresh = await openAll(NEW);
    const bob = await openAll(BOB);
    const before = revoked();
    writeFileSync(file, yaml([NEW], true));
    await gw.gateway.app.get(ConfigReloadService).reload();

    for (const [who, expected, pattern] of [
      [leaked, 4401, /API key .*revoked/],
      [bob, 4403, /disabled/],
    ] as const) {
      for (const ended of [who.wsEnded, who.sseEnded, who.getEnded]) {
        const got = await ended;
        assert.equal(got.code, expected, JSON.stringify(got));
        assert.match(got.reason, pattern);
      }
    }
    // Those six were refused, and nothing else: Alice's fresh channels were not.
    assert.deepEqual(revoked(), { key: before.key + 3, client: before.client + 3 });
    // The next request of such a session is refused too.
    const late = await raw(gw.url, { headers: { ...MCP_HEADERS, ...leaked.sessionHeaders }, body: list });
    assert.equal(late.status, 401, late.text);
    assert.equal(late.json.error.data.reason, 'invalid_api_key');
    const lateBob = await raw(gw.url, { headers: { ...MCP_HEADERS, ...bob.sessionHeaders }, body: list });
    assert.equal(lateBob.status, 403, lateBob.text);
    assert.equal(lateBob.json.error.data.reason, 'client_disabled');

    // Alice's other key is still good: what she opened with it stays open and is served.
    for (const ended of [fresh.wsEnded, fresh.sseEnded, fresh.getEnded])
      assert.equal(await stillOpen(ended), 'open');
    const ok = await raw(gw.url, { headers: { ...MCP_HEADERS, ...fresh.sessionHeaders }, body: list });
    assert.equal(ok.status, 200, ok.text);
    fresh.ws.close();
  });

  test('a client disabled by S5 policy_update has its WebSocket closed 4403 and its streams ended', async () => {
    const carol = await openAll(CAROL);
    gw.gateway.app.get(VsmBus).publish('s5_policy', {
      type: 'policy_update',
      scope: 'gateway',
      constraints: { disabledClients: ['carol'] },
    });
    for (const ended of [carol.wsEnded, carol.sseEnded, carol.getEnded]) {
      const got = await ended;
      assert.equal(got.code, 4403, JSON.stringify(got));
      assert.match(got.reason, /disabled/);
    }
    const late = await raw(gw.url, { headers: { ...MCP_HEADERS, ...carol.sessionHeaders }, body: list });
    assert.equal(late.status, 403, late.text);
    assert.equal(late.json.error.data.reason, 'client_disabled');
  });

  /** The WebSocket's answer to one request. */
  function wsAnswer(ws: WebSocket, body: string): Promise<{ id: unknown; result?: unknown }> {
    const { id } = JSON.parse(body) as { id: unknown };
    return new Promise((resolve) => {
      const onMessage = (data: Buffer) => {
        const msg = JSON.parse(data.toString('utf8')) as { id: unknown; result?: unknown };
        if (msg.id !== id) return;
        ws.off('message', onMessage);
        resolve(msg);
      };
      ws.on('message', onMessage);
      ws.send(body);
    });
  }

  test('an S5 allowedClients list closes the sessions of clients not on it with 4403; null lifts it', async () => {
    const policyUpdate = (allowedClients: string[] | null) =>
      gw.gateway.app.get(VsmBus).publish('s5_policy', {
        type: 'policy_update',
        scope: 'gateway',
        constraints: { allowedClients },
      });
    const dave = await openAll(DAVE);
    const erin = await openAll(ERIN);
    const before = revoked();
    // Alice is on the list too: her streams from the first test stay open, so the refusals counted
    // below are this list's of Dave alone.
    policyUpdate(['erin', 'alice']);
    for (const ended of [dave.wsEnded, dave.sseEnded, dave.getEnded]) {
      const got = await ended;
      assert.equal(got.code, 4403, JSON.stringify(got));
      assert.match(got.reason, /"dave" is not allowed/);
    }
    // Dave's three were refused, and nothing else: Erin's were not.
    assert.deepEqual(revoked(), { key: before.key, client: before.client + 3 });
    const late = await raw(gw.url, { headers: { ...MCP_HEADERS, ...dave.sessionHeaders }, body: list });
    assert.equal(late.status, 403, late.text);
    assert.equal(late.json.error.data.reason, 'client_not_allowed');

    // Erin is on the list: her WebSocket and streams stay open, and she is served on them.
    for (const ended of [erin.wsEnded, erin.sseEnded, erin.getEnded])
      assert.equal(await stillOpen(ended), 'open');
    const ok = await raw(gw.url, { headers: { ...MCP_HEADERS, ...erin.sessionHeaders }, body: list });
    assert.equal(ok.status, 200, ok.text);
    const overWs = await wsAnswer(erin.ws, INIT);
    assert.ok(overWs.result, JSON.stringify(overWs));

    // Lifted: Dave is admitted again, on every transport.
    policyUpdate(null);
    const again = await openAll(DAVE);
    const served = await raw(gw.url, { headers: { ...MCP_HEADERS, ...again.sessionHeaders }, body: list });
    assert.equal(served.status, 200, served.text);
    again.ws.close();
    erin.ws.close();
  });

  test('a POST whose answer is still streaming ends with 4401 when its key is revoked, not when the tool answers', async () => {
    const alice = await openAll(NEW);
    const call = JSON.stringify({
      jsonrpc: '2.0',
      id: 3,
      method: 'tools/call',
      params: { name: 'long_task', arguments: { duration: 30, steps: 30 }, _meta: { progressToken: 'p' } },
    });
    const post = streamEnd(new URL('/mcp', gw.url), alice.sessionHeaders, call);
    assert.equal(await post.opened, 200);
    writeFileSync(file, yaml([], true));
    await gw.gateway.app.get(ConfigReloadService).reload();
    const got = await Promise.race([
      post.ended,
      new Promise<'still streaming'>((r) => setTimeout(() => r('still streaming'), 5_000)),
    ]);
    assert.notEqual(got, 'still streaming', 'the POST stream outlived its revoked key');
    assert.equal((got as Ended).code, 4401, JSON.stringify(got));
    assert.match((got as Ended).reason, /API key .*revoked/);
  });
});

describe('the dashboard cookie over TLS', () => {
  const ADMIN = 'an-admin-token-long-enough-0123';
  /** The Set-Cookie of the `?token=` redirect. */
  const cookieOf = (res: { headers: Record<string, string | string[] | undefined> }) => {
    const header = res.headers['set-cookie'];
    return Array.isArray(header) ? header.join('\n') : String(header);
  };
  const get = (base: string, headers: Record<string, string>, ca?: Buffer) =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined> }>(
      (resolve, reject) => {
        const url = new URL(`/dashboard?token=${ADMIN}`, base);
        const r = (url.protocol === 'https:' ? httpsRequest : request)(url, { headers, ca }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
        });
        r.on('error', reject);
        r.end();
      },
    );

  test('served over TLS, the cookie is Secure', async () => {
    const cert = makeSelfSignedCert('dashboard-tls');
    const gw = await startGateway(
      {},
      {
        ADMIN_TOKEN: ADMIN,
        TLS_CERT_FILE: cert.certFile,
        TLS_KEY_FILE: cert.keyFile,
        TLS_RELOAD_INTERVAL_MS: '0',
      },
    );
    try {
      const res = await get(gw.url, {}, readFileSync(cert.certFile));
      assert.equal(res.status, 303);
      assert.match(cookieOf(res), /; Secure(;|$)/);
      assert.match(cookieOf(res), /HttpOnly; SameSite=Strict/);
    } finally {
      await gw.close();
    }
  });

  test('behind a trusted proxy that terminated TLS it is Secure; X-Forwarded-Proto from anyone else is ignored', async () => {
    const trusting = await startGateway({}, { ADMIN_TOKEN: ADMIN, TRUSTED_PROXIES: '127.0.0.1,::1' });
    const plain = await startGateway({}, { ADMIN_TOKEN: ADMIN });
    try {
      const viaProxy = await get(trusting.url, { 'x-forwarded-proto': 'https' });
      assert.equal(viaProxy.status, 303);
      assert.match(cookieOf(viaProxy), /; Secure(;|$)/);
      // Plain http: a Secure cookie would never be sent back, so none is set.
      assert.doesNotMatch(cookieOf(await get(trusting.url, {})), /Secure/);
      const spoofed = await get(plain.url, { 'x-forwarded-proto': 'https' });
      assert.equal(spoofed.status, 303);
      assert.doesNotMatch(cookieOf(spoofed), /Secure/);
    } finally {
      await trusting.close();
      await plain.close();
    }
  });
});
