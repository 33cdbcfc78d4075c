/**
 * Authentication and admission on every transport (issue 8 items 1, 5, 6): a refusal table per
 * transport (Streamable HTTP, legacy SSE, WebSocket), each row asserting the status, the
 * WWW-Authenticate header, the refusal counter and that the upstream never saw a client credential.
 */
import assert from 'node:assert/strict';
import type { webcrypto } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { WebSocket } from 'ws';
import { bootstrap } from '../src/bootstrap';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { AdmissionService } from '../src/policy/policy.module';
import { apiKeyDigest, refusal, WS_TOKEN_PREFIX } from '../src/policy/identity';
import { WsClose } from '../src/transports/ws/ws-close-codes';
import { VsmBus } from '../src/vsm/vsm-bus.service';
import { startGateway, type RunningGateway } from './helpers/gateway';

type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });
const VERSION = '2025-11-25';
const ISSUER = 'https://issuer.test';
const SCOPE = 'mcp:tools';

/** A Streamable HTTP MCP upstream that answers in JSON and records every request's headers. */
async function recordingUpstream(): Promise<{
  url: string;
  seen: IncomingHttpHeaders[];
  close(): Promise<void>;
}> {
  const seen: IncomingHttpHeaders[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(req.headers);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST') {
        res.writeHead(req.method === 'DELETE' ? 200 : 405).end();
        return;
      }
      const msg = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as {
        id?: number;
        method?: string;
        params?: { protocolVersion?: string };
      };
      if (msg.id === undefined) {
        res.writeHead(202).end();
        return;
      }
      const result =
        msg.method === 'initialize'
          ? {
              protocolVersion: msg.params?.protocolVersion ?? VERSION,
              capabilities: { tools: {} },
              serverInfo: { name: 'recorder', version: '1.0.0' },
            }
          : msg.method === 'tools/list'
            ? { tools: [] }
            : {};
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'upstream-1' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    seen,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** A JWKS endpoint whose key set the test rotates. */
async function jwksServer(): Promise<{ url: string; keys: object[]; close(): Promise<void> }> {
  const state = { keys: [] as object[] };
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
    get keys() {
      return state.keys;
    },
    set keys(k: object[]) {
      state.keys = k;
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}

interface Attempt {
  status: number;
  headers: IncomingHttpHeaders;
  body: any;
  sessionId?: string;
}

const initBody = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'auth-test', version: '1' } },
});

function http(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
  stream = false,
): Promise<Attempt> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers },
      (res) => {
        if (stream && res.statusCode === 200) {
          // An SSE stream: read the first event (the endpoint), then go away.
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString('utf8');
            const m = /event: endpoint\ndata: (\S+)/.exec(text);
            if (m) {
              resolve({ status: 200, headers: res.headers, body: m[1] });
              req.destroy();
            }
          });
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = text;
          }
          const sessionId = res.headers['mcp-session-id'];
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: json,
            sessionId: typeof sessionId === 'string' ? sessionId : undefined,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const post = (base: string, headers: Record<string, string>, body = initBody) =>
  http(
    base,
    'POST',
    '/mcp',
    { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body,
  );

/** A WebSocket upgrade: 101 (then closed) or the refusal's status and headers. */
function upgrade(
  base: string,
  headers: Record<string, string>,
  protocols: string[] = ['mcp'],
  path = '/ws',
): Promise<Attempt & { protocol?: string; closeCode?: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(new URL(path, base.replace('http', 'ws')), protocols, { headers });
    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null'),
        }),
      );
    });
    ws.on('upgrade', (res) => {
      const sessionId = res.headers['mcp-session-id'];
      ws.once('close', (code) =>
        resolve({
          status: 101,
          headers: res.headers,
          body: undefined,
          protocol: ws.protocol,
          closeCode: code,
          sessionId: typeof sessionId === 'string' ? sessionId : undefined,
        }),
      );
      // A refused resume closes right after the 101; a good one stays open: close it ourselves.
      setTimeout(() => ws.close(), 150);
    });
    ws.on('error', (err) => {
      if (!/Unexpected server response/.test(err.message)) reject(err);
    });
  });
}

type ClientTransport = 'streamable' | 'sse' | 'ws';
const TRANSPORTS: ClientTransport[] = ['streamable', 'sse', 'ws'];

function attempt(
  base: string,
  transport: ClientTransport,
  headers: Record<string, string>,
): Promise<Attempt> {
  if (transport === 'streamable') return post(base, headers);
  if (transport === 'sse')
    return http(base, 'GET', '/sse', { accept: 'text/event-stream', ...headers }, undefined, true);
  return upgrade(base, headers);
}

const okStatus: Record<ClientTransport, number> = { streamable: 200, sse: 200, ws: 101 };

/** A 2026-07-28 (sessionless) tools/list: no session, no initialize. */
function sessionless(base: string, headers: Record<string, string>): Promise<Attempt> {
  const meta = {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientCapabilities': {},
    'io.modelcontextprotocol/clientInfo': { name: 'auth-test', version: '1' },
  };
  return post(
    base,
    { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/list', ...headers },
    JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list', params: { _meta: meta } }),
  );
}

describe('authentication: API keys, JWT (JWKS), OAuth resource server', () => {
  let jose: Jose;
  let upstream: Awaited<ReturnType<typeof recordingUpstream>>;
  let jwks: Awaited<ReturnType<typeof jwksServer>>;
  let gw: RunningGateway;
  let metrics: GatewayMetrics;
  let k1: { privateKey: webcrypto.CryptoKey; jwk: object };
  let k2: { privateKey: webcrypto.CryptoKey; jwk: object };
  let stranger: { privateKey: webcrypto.CryptoKey };
  const ALICE_OLD = 'alice-old-key-0123456789abcdef';
  const ALICE_NEW = 'alice-new-key-0123456789abcdef';
  const BOB = 'bob-key-0123456789abcdef0123';
  let resource: string;

  async function keyPair(kid: string) {
    const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true });
    return { privateKey, jwk: { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
  }

  async function token(
    options: {
      sub?: string;
      aud?: string;
      iss?: string;
      scope?: string;
      exp?: number;
      kid?: string;
      key?: webcrypto.CryptoKey;
    } = {},
  ): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new jose.SignJWT({ scope: options.scope ?? SCOPE })
      .setProtectedHeader({ alg: 'RS256', kid: options.kid ?? 'k1' })
      .setSubject(options.sub ?? 'carol')
      .setIssuer(options.iss ?? ISSUER)
      .setAudience(options.aud ?? resource)
      .setIssuedAt(now - 5)
      .setExpirationTime(options.exp ?? now + 600)
      .sign(options.key ?? k1.privateKey);
  }

  const refusals = (reason: string) => metrics.authRefusals.get(reason) ?? 0;

  before(async () => {
    const specifier = 'jose';
    jose = (await import(specifier)) as Jose;
    upstream = await recordingUpstream();
    jwks = await jwksServer();
    k1 = await keyPair('k1');
    k2 = await keyPair('k2');
    stranger = await keyPair('k1');
    jwks.keys = [k1.jwk];
    gw = await startGateway(
      {
        defaultService: 'rec',
        services: { rec: { replicas: [{ transport: 'streamable-http', url: upstream.url }] } },
        clients: {
          alice: { apiKeys: [apiKeyDigest(ALICE_OLD), apiKeyDigest(ALICE_NEW)], disabled: false },
          bob: { apiKeys: [apiKeyDigest(BOB)], disabled: false },
        },
      },
      {
        AUTH_MODE: 'api_key,oauth',
        AUTH_JWKS_URL: jwks.url,
        AUTH_JWKS_COOLDOWN_MS: '0',
        AUTH_JWT_ISSUER: ISSUER,
        AUTH_AUTHORIZATION_SERVERS: ISSUER,
        AUTH_REQUIRED_SCOPES: SCOPE,
        AUTH_JWT_CLOCK_TOLERANCE_S: '0',
        WS_HEARTBEAT_INTERVAL_MS: '200',
      },
    );
    metrics = gw.gateway.app.get(GatewayMetrics);
    resource = `${gw.url}/mcp`;
  });

  after(async () => {
    await gw?.close();
    await upstream?.close();
    await jwks?.close();
  });

  /** Each endpoint is its own resource URL (of the one gateway): /mcp, /sse, /ws. */
  const metadataUrl = (transport: ClientTransport = 'streamable') =>
    `${gw.url}/.well-known/oauth-protected-resource/${transport === 'streamable' ? 'mcp' : transport}`;

  for (const transport of TRANSPORTS) {
    describe(`refusal table over ${transport}`, () => {
      const rows: Array<{
        name: string;
        headers: () => Promise<Record<string, string>>;
        status: number;
        reason?: string;
        bearerError?: string;
      }> = [
        { name: 'no credentials', headers: async () => ({}), status: 401, reason: 'missing_credentials' },
        {
          name: 'a bad API key',
          headers: async () => ({ authorization: 'Bearer not-a-key-at-all' }),
          status: 401,
          reason: 'invalid_api_key',
          bearerError: 'invalid_token',
        },
        {
          name: 'the old key of a rotation',
          headers: async () => ({ authorization: `Bearer ${ALICE_OLD}` }),
          status: 0,
        },
        {
          name: 'the new key of a rotation (X-API-Key)',
          headers: async () => ({ 'x-api-key': ALICE_NEW }),
          status: 0,
        },
        {
          name: 'an expired JWT',
          headers: async () => ({
            authorization: `Bearer ${await token({ exp: Math.floor(Date.now() / 1000) - 60 })}`,
          }),
          status: 401,
          reason: 'token_expired',
          bearerError: 'invalid_token',
        },
        {
          name: 'a JWT for another audience',
          headers: async () => ({
            authorization: `Bearer ${await token({ aud: 'https://other.example/mcp' })}`,
          }),
          status: 401,
          reason: 'wrong_audience',
          bearerError: 'invalid_token',
        },
        {
          name: 'a JWT from another issuer',
          headers: async () => ({ authorization: `Bearer ${await token({ iss: 'https://evil.example' })}` }),
          status: 401,
          reason: 'wrong_issuer',
          bearerError: 'invalid_token',
        },
        {
          name: 'a JWT with a bad signature',
          headers: async () => ({ authorization: `Bearer ${await token({ key: stranger.privateKey })}` }),
          status: 401,
          reason: 'bad_signature',
          bearerError: 'invalid_token',
        },
        {
          name: 'a JWT without the required scope',
          headers: async () => ({ authorization: `Bearer ${await token({ scope: 'other' })}` }),
          status: 403,
          reason: 'insufficient_scope',
          bearerError: 'insufficient_scope',
        },
        {
          name: 'a valid JWT',
          headers: async () => ({ authorization: `Bearer ${await token()}` }),
          status: 0,
        },
      ];
      for (const row of rows) {
        test(`${row.name} → ${row.status || okStatus[transport]}`, async () => {
          const before = row.reason ? refusals(row.reason) : 0;
          const got = await attempt(gw.url, transport, await row.headers());
          if (!row.reason) {
            assert.equal(got.status, okStatus[transport], JSON.stringify(got.body));
            return;
          }
          assert.equal(got.status, row.status);
          assert.equal(got.body.error.code, -31008);
          assert.equal(got.body.error.data.reason, row.reason);
          assert.equal(refusals(row.reason), before + 1, 'counted once under its reason');
          assert.match(String(got.headers['x-correlation-id']), /^[0-9a-f-]{36}$/);
          const challenge = String(got.headers['www-authenticate']);
          assert.ok(challenge.startsWith('Bearer '), challenge);
          assert.ok(challenge.includes(`resource_metadata="${metadataUrl(transport)}"`), challenge);
          if (row.bearerError) assert.ok(challenge.includes(`error="${row.bearerError}"`), challenge);
          else assert.ok(!challenge.includes('error='), 'no error code without a credential (RFC 6750)');
          if (row.status === 403) assert.ok(challenge.includes(`scope="${SCOPE}"`), challenge);
        });
      }
    });
  }

  test('sessionless Streamable HTTP (2026-07-28): every request is authenticated', async () => {
    const none = await sessionless(gw.url, {});
    assert.equal(none.status, 401);
    assert.ok(String(none.headers['www-authenticate']).includes('resource_metadata='));
    const bad = await sessionless(gw.url, {
      authorization: `Bearer ${await token({ aud: 'https://x.example' })}`,
    });
    assert.equal(bad.body.error.data.reason, 'wrong_audience');
    const ok = await sessionless(gw.url, { 'x-api-key': ALICE_NEW });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body.result.tools, []);
  });

  test('an anonymous POST is refused before its body is read', async () => {
    const url = new URL('/mcp', gw.url);
    const got = await new Promise<{ status: number; challenge: string }>((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: '/mcp',
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            'content-length': String(1024 * 1024),
          },
        },
        (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0, challenge: String(res.headers['www-authenticate']) });
          req.destroy();
        },
      );
      req.on('error', (err) => (/socket hang up|ECONNRESET/.test(err.message) ? undefined : reject(err)));
      req.write('{"jsonrpc":"2.0",'); // the rest never comes: only an answer from the headers can end this
    });
    assert.equal(got.status, 401);
    assert.ok(got.challenge.includes('resource_metadata='));
  });

  test('the upstream never received a client credential (no token pass-through)', () => {
    assert.ok(upstream.seen.length > 0, 'the upstream was used');
    for (const headers of upstream.seen) {
      assert.equal(headers.authorization, undefined);
      assert.equal(headers['x-api-key'], undefined);
    }
  });

  test('protected resource metadata (RFC 9728), at the root and per path, ignoring untrusted X-Forwarded-Host', async () => {
    for (const path of [
      '/.well-known/oauth-protected-resource',
      '/.well-known/oauth-protected-resource/mcp',
    ]) {
      const got = await http(gw.url, 'GET', path, {
        'x-forwarded-host': 'evil.example',
        'x-forwarded-proto': 'https',
      });
      assert.equal(got.status, 200);
      assert.deepEqual(got.body, {
        resource: resource,
        authorization_servers: [ISSUER],
        scopes_supported: [SCOPE],
        bearer_methods_supported: ['header'],
        resource_name: 'MCP gateway',
      });
    }
    const sse = await http(gw.url, 'GET', '/.well-known/oauth-protected-resource/sse', {});
    assert.equal(sse.body.resource, `${gw.url}/sse`, 'per path: the resource of that endpoint');
  });

  test("audience: a token for any of this gateway's endpoints is accepted, one for another path is not", async () => {
    assert.equal(
      (await post(gw.url, { authorization: `Bearer ${await token({ aud: `${gw.url}/sse` })}` })).status,
      200,
    );
    const other = await post(gw.url, { authorization: `Bearer ${await token({ aud: `${gw.url}/api` })}` });
    assert.equal(other.status, 401);
    assert.equal(other.body.error.data.reason, 'wrong_audience');
  });

  test("another identity's session id is not found (404), on Streamable HTTP and legacy SSE", async () => {
    const alice = await post(gw.url, { authorization: `Bearer ${ALICE_OLD}` });
    assert.equal(alice.status, 200);
    const list = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    const own = await post(
      gw.url,
      {
        authorization: `Bearer ${ALICE_NEW}`,
        'mcp-session-id': alice.sessionId!,
        'mcp-protocol-version': VERSION,
      },
      list,
    );
    assert.equal(own.status, 200, 'the same client with its rotated key keeps its session');
    const foreign = await post(
      gw.url,
      { authorization: `Bearer ${BOB}`, 'mcp-session-id': alice.sessionId!, 'mcp-protocol-version': VERSION },
      list,
    );
    assert.equal(foreign.status, 404);
    assert.equal(foreign.body.error.code, -31005);

    const stream = await attempt(gw.url, 'sse', { 'x-api-key': ALICE_OLD });
    const endpoint = String(stream.body);
    const bobPost = await http(
      gw.url,
      'POST',
      endpoint,
      { 'content-type': 'application/json', 'x-api-key': BOB },
      list,
    );
    assert.equal(bobPost.status, 404);
    const alicePost = await http(
      gw.url,
      'POST',
      endpoint,
      { 'content-type': 'application/json', 'x-api-key': ALICE_OLD },
      list,
    );
    assert.equal(alicePost.status, 202);
  });

  test("another identity's session id over WebSocket closes like an unknown session", async () => {
    const alice = await upgrade(gw.url, { authorization: `Bearer ${ALICE_OLD}` });
    assert.equal(alice.status, 101);
    assert.ok(alice.sessionId);
    const bob = await upgrade(gw.url, {
      authorization: `Bearer ${BOB}`,
      'mcp-session-id': alice.sessionId!,
      'last-event-id': '0',
    });
    assert.equal(bob.status, 101);
    assert.equal(bob.closeCode, WsClose.SessionNotFound);
  });

  test('WebSocket: a SEP-1288 subprotocol token is accepted and never echoed back', async () => {
    const entry = `${WS_TOKEN_PREFIX}${Buffer.from(await token()).toString('base64url')}`;
    const got = await upgrade(gw.url, {}, ['mcp', entry]);
    assert.equal(got.status, 101);
    assert.equal(got.protocol, 'mcp');
    const bad = await upgrade(gw.url, {}, [
      'mcp',
      `${WS_TOKEN_PREFIX}${Buffer.from('nope').toString('base64url')}`,
    ]);
    assert.equal(bad.status, 401);
  });

  test('WebSocket: ?access_token= is ignored unless AUTH_WS_QUERY_TOKEN is on', async () => {
    const got = await upgrade(gw.url, {}, ['mcp'], `/ws?access_token=${await token()}`);
    assert.equal(got.status, 401);
    assert.equal(got.body.error.data.reason, 'missing_credentials');
  });

  test('JWKS rotation: a token signed by a new key (new kid) is accepted without a restart', async () => {
    const before = await post(gw.url, {
      authorization: `Bearer ${await token({ kid: 'k2', key: k2.privateKey })}`,
    });
    assert.equal(before.status, 401, 'unknown until the issuer publishes it');
    assert.equal(before.body.error.data.reason, 'unknown_key');
    jwks.keys = [k1.jwk, k2.jwk];
    const afterRotation = await post(gw.url, {
      authorization: `Bearer ${await token({ kid: 'k2', key: k2.privateKey, sub: 'dave' })}`,
    });
    assert.equal(afterRotation.status, 200);
  });

  test('an expired token is refused (401) even on a live session, and its WebSocket, SSE and GET streams end', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const short = await token({ exp });
    const init = await post(gw.url, { authorization: `Bearer ${short}` });
    assert.equal(init.status, 200);
    // The same token on a WebSocket: authenticated once at the upgrade, closed 4401 when it expires.
    const ws = new WebSocket(new URL('/ws', gw.url.replace('http', 'ws')), ['mcp'], {
      headers: { authorization: `Bearer ${short}` },
    });
    const wsClosed = new Promise<{ code: number; at: number }>((resolve) =>
      ws.on('close', (code) => resolve({ code, at: Date.now() })),
    );
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    // And on a legacy SSE stream: it ends with an error event carrying closeCode 4401.
    const sseEnd = new Promise<{ text: string; at: number }>((resolve, reject) => {
      const r = request(
        new URL('/sse', gw.url),
        { headers: { accept: 'text/event-stream', authorization: `Bearer ${short}` } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ text, at: Date.now() }));
        },
      );
      r.on('error', reject);
      r.end();
    });
    const list = JSON.stringify({ jwt: 1, jsonrpc: '2.0', id: 2, method: 'tools/list' }).replace(
      '"jwt":1,',
      '',
    );
    const headers = {
      authorization: `Bearer ${short}`,
      'mcp-session-id': init.sessionId!,
      'mcp-protocol-version': VERSION,
    };
    assert.equal((await post(gw.url, headers, list)).status, 200);
    // The session's Streamable HTTP GET stream, opened with the same token, ends at expiry too.
    const getEnd = new Promise<{ status: number; text: string; at: number }>((resolve, reject) => {
      const r = request(
        new URL('/mcp', gw.url),
        { method: 'GET', headers: { ...headers, accept: 'text/event-stream' } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text, at: Date.now() }));
        },
      );
      r.on('error', reject);
      r.end();
    });
    await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 50));
    const before = refusals('token_expired');
    const late = await post(gw.url, headers, list);
    assert.equal(late.status, 401);
    assert.equal(late.body.error.data.reason, 'token_expired');
    assert.ok(String(late.headers['www-authenticate']).includes('error="invalid_token"'));
    assert.equal(refusals('token_expired'), before + 1);
    const closed = await wsClosed;
    assert.equal(closed.code, WsClose.CredentialExpired);
    assert.ok(closed.at >= exp * 1000, 'not before the token expired');
    const sse = await sseEnd;
    assert.match(sse.text, /event: endpoint/);
    const last = /event: error\ndata: (.*)\n/.exec(sse.text);
    assert.ok(last, 'the SSE stream ends with an error event');
    assert.equal(JSON.parse(last[1]).closeCode, WsClose.CredentialExpired);
    assert.ok(sse.at >= exp * 1000, 'the stream is not ended before the token expired');
    const get = await getEnd;
    assert.equal(get.status, 200);
    const getLast = /event: error\ndata: (.*)\n/.exec(get.text);
    assert.ok(getLast, 'the GET stream ends with an error event');
    assert.equal(JSON.parse(getLast[1]).closeCode, WsClose.CredentialExpired);
    assert.ok(get.at >= exp * 1000, 'the GET stream is not ended before the token expired');
  });

  test('an admission check provided by a team runs on every transport', async () => {
    const admission = gw.gateway.app.get(AdmissionService);
    admission.use({
      name: 'no-eve',
      check: (ctx) =>
        ctx.identity.clientId === 'eve' ? refusal(403, 'team_check', 'eve is blocked') : undefined,
    });
    for (const transport of TRANSPORTS) {
      const got = await attempt(gw.url, transport, {
        authorization: `Bearer ${await token({ sub: 'eve' })}`,
      });
      assert.equal(got.status, 403, transport);
      assert.equal(got.body.error.data.reason, 'team_check');
    }
    assert.equal(metrics.authRefusals.get('team_check'), 3);
  });

  test('S5 policy_update disabledClients refuses the next request of that client', async () => {
    const init = await post(gw.url, { 'x-api-key': BOB });
    assert.equal(init.status, 200);
    gw.gateway.app.get(VsmBus).publish('s5_policy', {
      type: 'policy_update',
      scope: 'gateway',
      constraints: { disabledClients: ['bob'] },
    });
    const list = JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' });
    const refused = await post(
      gw.url,
      { 'x-api-key': BOB, 'mcp-session-id': init.sessionId!, 'mcp-protocol-version': VERSION },
      list,
    );
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.data.reason, 'client_disabled');
    assert.equal(
      (await post(gw.url, { 'x-api-key': ALICE_OLD })).status,
      200,
      'other clients are unaffected',
    );
    gw.gateway.app.get(VsmBus).publish('s5_policy', {
      type: 'policy_update',
      scope: 'gateway',
      constraints: { disabledClients: [] },
    });
    assert.equal((await post(gw.url, { 'x-api-key': BOB })).status, 200);
  });
});

describe('S5 check_compliance and verify_identity', () => {
  let gw: RunningGateway;
  let emitter: EventEmitter2;
  let metrics: GatewayMetrics;
  const ADMIN = 'admin-token-0123456789';

  before(async () => {
    gw = await startGateway({}, { S5_TIMEOUT_MS: '100', S5_DEFAULT_VERDICT: 'deny', ADMIN_TOKEN: ADMIN });
    emitter = gw.gateway.app.get(EventEmitter2);
    metrics = gw.gateway.app.get(GatewayMetrics);
  });
  after(() => gw?.close());

  test('with only the default handler a session is admitted', async () => {
    assert.equal((await post(gw.url, {})).status, 200);
  });

  test('a handler that denies makes every transport refuse with its reason (403)', async () => {
    const deny = (e: { type: string }) =>
      e.type === 'check_compliance' ? { allowed: false, reason: 'maintenance window' } : undefined;
    emitter.on('s5_policy', deny);
    try {
      for (const transport of TRANSPORTS) {
        const got = await attempt(gw.url, transport, {});
        assert.equal(got.status, 403, transport);
        assert.match(got.body.error.message, /maintenance window/);
      }
      const modern = await sessionless(gw.url, {});
      assert.equal(modern.status, 403, 'a new sessionless bridge is admitted the same way');
      assert.equal(metrics.authRefusals.get('compliance_denied'), 4);
    } finally {
      emitter.off('s5_policy', deny);
    }
  });

  test('a handler that never answers gets the configured default (deny) after the timeout, not a hang', async () => {
    const hang = (e: { type: string }) => (e.type === 'check_compliance' ? new Promise(() => {}) : undefined);
    emitter.on('s5_policy', hang);
    try {
      const started = Date.now();
      const got = await post(gw.url, {});
      assert.equal(got.status, 403);
      assert.match(got.body.error.message, /did not answer check_compliance within 100 ms/);
      assert.ok(Date.now() - started < 2000);
    } finally {
      emitter.off('s5_policy', hang);
    }
  });

  test('verify_identity is asked before an admin change; a denial is 403, reads still work', async () => {
    const deny = (e: { type: string }) =>
      e.type === 'verify_identity' ? { allowed: false, reason: 'change freeze' } : undefined;
    emitter.on('s5_policy', deny);
    try {
      const auth = { authorization: `Bearer ${ADMIN}` };
      assert.equal((await http(gw.url, 'GET', '/admin/services', auth)).status, 200);
      const change = await http(
        gw.url,
        'PATCH',
        '/admin/services/demo/replicas/x',
        { ...auth, 'content-type': 'application/json' },
        JSON.stringify({ weight: 2 }),
      );
      assert.equal(change.status, 403);
      assert.match(change.body.message, /change freeze/);
    } finally {
      emitter.off('s5_policy', deny);
    }
  });
});

describe('startup', () => {
  test('a non-loopback bind without AUTH_MODE refuses to start; AUTH_MODE=none starts', async () => {
    await assert.rejects(
      bootstrap({ env: { LOG_LEVEL: 'silent' }, config: { host: '0.0.0.0', port: 0 } }),
      /set AUTH_MODE/,
    );
    const gw = await bootstrap({
      env: { LOG_LEVEL: 'silent', AUTH_MODE: 'none' },
      config: { host: '0.0.0.0', port: 0 },
    });
    await gw.app.close();
  });

  test('AUTH_MODE=api_key without any client key refuses to start', async () => {
    await assert.rejects(
      bootstrap({ env: { LOG_LEVEL: 'silent', AUTH_MODE: 'api_key' }, config: { port: 0 } }),
      /apiKeys/,
    );
  });
});

describe('HS256 JWT', () => {
  let gw: RunningGateway;
  let jose: Jose;
  const SECRET = 'a-very-long-shared-secret-of-32+chars!';
  before(async () => {
    const specifier = 'jose';
    jose = (await import(specifier)) as Jose;
    gw = await startGateway(
      {},
      { AUTH_MODE: 'jwt', AUTH_JWT_SECRET: SECRET, AUTH_JWT_CLIENT_ID_CLAIM: 'client_id' },
    );
  });
  after(() => gw?.close());

  const sign = (secret: string, claims: Record<string, unknown>) =>
    new jose.SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(secret));

  test('a token signed with the secret is admitted under its configured claim; another secret is refused', async () => {
    const good = await post(gw.url, {
      authorization: `Bearer ${await sign(SECRET, { client_id: 'svc-1' })}`,
    });
    assert.equal(good.status, 200);
    const bad = await post(gw.url, {
      authorization: `Bearer ${await sign(`${SECRET}x`, { client_id: 'svc-1' })}`,
    });
    assert.equal(bad.status, 401);
    assert.equal(bad.body.error.data.reason, 'bad_signature');
    assert.equal(String(bad.headers['www-authenticate']).split(',')[0], 'Bearer realm="mcp-gateway"');
    const noClaim = await post(gw.url, { authorization: `Bearer ${await sign(SECRET, { sub: 'x' })}` });
    assert.equal(noClaim.body.error.data.reason, 'no_client_id');
  });
});
