/**
 * One client id per identity with several authentication modes on (README "One client id per
 * identity"): an API-key client `ops`, a JWT with `sub: ops` and a client certificate with CN `ops`
 * are three clients — their own sessions, rate-limit buckets, authorization rules and sessionless
 * bridges — unless `clients:` lists the token subject and the certificate name under `ops`, which
 * makes them one. A certificate whose name is not a valid client id is refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { Agent, fetch as undiciFetch } from 'undici';
import type { ClientConfig } from '../src/config/gateway-config';
import { apiKeyDigest } from '../src/policy/identity';
import { SessionService } from '../src/session/session.module';
import { StreamableHttpRoutes } from '../src/transports/streamable-http/streamable-http.routes';
import { makeSelfSignedCert, type TestCert } from './helpers/certs';
import { clientCa, type ClientCert } from './helpers/client-certs';
import { startGateway, type RunningGateway } from './helpers/gateway';

type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });

const VERSION = '2025-11-25';
const MODERN = '2026-07-28';
const RATE_LIMITED = -31004;
const OPS_KEY = 'ops-api-key-0123456789abcdef0123';
const SECRET = 'a-jwt-secret-long-enough-for-hs256-0123';
/** Each identity's budget: what the tests before the rate-limit one spend fits, with room to spare. */
const BURST = 20;
const slow = { perSecond: 0.001, burst: BURST };

/** How one identity proves itself: headers (API key, JWT) and, for mTLS, the client certificate. */
interface Who {
  name: string;
  headers: Record<string, string>;
  cert?: ClientCert;
}

let jose: Jose;
let server: TestCert;
let ca: ReturnType<typeof clientCa>;
let opsCert: ClientCert;
/** The gateway's own (self-signed) certificate, which the clients trust. */
let serverCa: Buffer;

before(async () => {
  const specifier = 'jose';
  jose = (await import(specifier)) as Jose;
  server = makeSelfSignedCert('127.0.0.1', mkdtempSync(join(tmpdir(), 'gw-ns-')));
  ca = clientCa(server.dir);
  opsCert = ca.issue('ops');
  serverCa = readFileSync(server.certFile);
});

async function jwt(sub: string): Promise<string> {
  return new jose.SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(SECRET));
}

async function identities(): Promise<Who[]> {
  return [
    { name: 'api key ops', headers: { 'x-api-key': OPS_KEY } },
    { name: 'JWT sub ops', headers: { authorization: `Bearer ${await jwt('ops')}` } },
    { name: 'certificate CN ops', headers: {}, cert: opsCert },
  ];
}

function startMultiMode(clients: Record<string, ClientConfig>): Promise<RunningGateway> {
  return startGateway(
    { clients },
    {
      AUTH_MODE: 'api_key,jwt,mtls',
      AUTH_JWT_SECRET: SECRET,
      TLS_CERT_FILE: server.certFile,
      TLS_KEY_FILE: server.keyFile,
      TLS_CA_FILE: ca.caFile,
      // request: API-key and JWT clients connect without a certificate.
      TLS_CLIENT_CERT: 'request',
      RATE_LIMIT_ENABLED: 'true',
    },
  );
}

/** An official SDK client over Streamable HTTP (TLS), as `who`. */
async function connect(base: string, who: Who): Promise<{ client: Client; sessionId: string }> {
  const agent = new Agent({ connect: { ca: serverCa, ...who.cert } });
  const transport = new StreamableHTTPClientTransport(new URL('/mcp', base), {
    requestInit: { headers: who.headers },
    fetch: ((url: string | URL, init?: RequestInit) =>
      undiciFetch(url, { ...(init as object), dispatcher: agent })) as unknown as FetchLike,
  });
  const client = new Client({ name: `ns-${who.name}`, version: '1.0.0' });
  await client.connect(transport);
  return { client, sessionId: transport.sessionId! };
}

interface Answer {
  status: number;
  body: { result?: unknown; error?: { code: number; message: string; data?: { reason?: string } } };
}

let rawIds = 0;
/** A request id of its own (a session's answers are deduplicated by id; the SDK counts from 0). */
const rawId = () => `raw-${++rawIds}`;

/** One raw POST to /mcp as `who`: the JSON-RPC answer whether it came as JSON or as an SSE event. */
function post(base: string, who: Who, body: object, headers: Record<string, string> = {}): Promise<Answer> {
  const url = new URL('/mcp', base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        ca: serverCa,
        ...who.cert,
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...who.headers,
          ...headers,
        },
        timeout: 10_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          // An SSE answer may open with a priming event whose data is empty: the message is the last data line.
          const events = [...text.matchAll(/^data: ?(.+)$/gm)].map((m) => m[1]);
          const data = events.length > 0 ? events[events.length - 1] : text;
          let parsed: Answer['body'] = {};
          try {
            parsed = data ? (JSON.parse(data) as Answer['body']) : {};
          } catch {
            parsed = {};
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: 'ns', version: '1' } },
};

/** A sessionless (2026-07-28) echo call, which the gateway bridges to a hidden upstream session per client. */
function modernEcho(base: string, who: Who, text: string): Promise<Answer> {
  return post(
    base,
    who,
    {
      jsonrpc: '2.0',
      id: `m-${text}`,
      method: 'tools/call',
      params: {
        name: 'echo',
        arguments: { text },
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': {},
          'io.modelcontextprotocol/clientInfo': { name: 'ns-modern', version: '1.0.0' },
        },
      },
    },
    { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/call', 'mcp-name': 'echo' },
  );
}

async function toolNames(client: Client): Promise<string[]> {
  return (await client.listTools()).tools.map((t) => t.name).sort();
}

/** Spends `client`'s bucket: pings until the gateway refuses one with the rate-limit error. */
async function exhaust(client: Client): Promise<void> {
  for (let i = 0; i < BURST + 2; i++) {
    try {
      await client.ping();
    } catch (err) {
      // The refusal comes with HTTP 429, which the SDK reports as an Error carrying the JSON-RPC body.
      const code = err instanceof McpError ? err.code : Number(/"code":(-?\d+)/.exec(String(err))?.[1]);
      assert.equal(code, RATE_LIMITED, String(err));
      return;
    }
  }
  assert.fail(`no rate-limit refusal after ${BURST + 2} pings`);
}

describe('three modes, one name: three clients', () => {
  let gw: RunningGateway;
  let who: Who[];
  let sessions: Array<{ client: Client; sessionId: string }>;

  before(async () => {
    who = await identities();
    gw = await startMultiMode({
      ops: { apiKeys: [apiKeyDigest(OPS_KEY)], tools: { allow: ['echo'] }, rateLimit: slow },
      'jwt:ops': { tools: { allow: ['echo', 'current_time'] }, rateLimit: slow },
      'mtls:ops': { tools: { allow: ['echo', 'long_task'] }, rateLimit: slow },
    });
    sessions = [];
    for (const w of who) sessions.push(await connect(gw.url, w));
  });
  after(async () => {
    for (const s of sessions ?? []) await s.client.close().catch(() => undefined);
    await gw?.close();
  });

  test('each identity is its own client: ops, jwt:ops, mtls:ops', () => {
    const ids = sessions.map((s) => gw.gateway.app.get(SessionService).get(s.sessionId)?.clientId);
    assert.deepEqual(ids, ['ops', 'jwt:ops', 'mtls:ops']);
  });

  test("another identity presenting a session's id gets 404, its owner 200", async () => {
    for (let owner = 0; owner < who.length; owner++) {
      const headers = { 'mcp-session-id': sessions[owner].sessionId, 'mcp-protocol-version': VERSION };
      for (let other = 0; other < who.length; other++) {
        const got = await post(
          gw.url,
          who[other],
          { jsonrpc: '2.0', id: rawId(), method: 'tools/list' },
          headers,
        );
        const expected = owner === other ? 200 : 404;
        assert.equal(got.status, expected, `${who[other].name} on the session of ${who[owner].name}`);
      }
    }
  });

  test("each identity gets its own authorization rules (clients.ops, clients['jwt:ops'], clients['mtls:ops'])", async () => {
    assert.deepEqual(await toolNames(sessions[0].client), ['echo']);
    assert.deepEqual(await toolNames(sessions[1].client), ['current_time', 'echo']);
    assert.deepEqual(await toolNames(sessions[2].client), ['echo', 'long_task']);
    await assert.rejects(
      sessions[1].client.callTool({ name: 'long_task', arguments: {} }),
      /is not allowed for this client/,
    );
  });

  test('the sessionless 2026-07-28 bridge keeps one upstream session per identity', async () => {
    const handler = gw.gateway.app.get(StreamableHttpRoutes).handler.sessionless!;
    for (const w of who) {
      const got = await modernEcho(gw.url, w, `hello from ${w.name}`);
      assert.equal(got.status, 200, JSON.stringify(got.body));
      assert.deepEqual((got.body.result as { content: unknown }).content, [
        { type: 'text', text: `hello from ${w.name}` },
      ]);
    }
    assert.equal(handler.bridgeCount, 3, 'three clients, three bridges');
  });

  test("each identity has its own rate-limit bucket: spending ops's leaves jwt:ops and mtls:ops served", async () => {
    await exhaust(sessions[0].client);
    await sessions[1].client.ping();
    await sessions[2].client.ping();
    await exhaust(sessions[1].client);
    await sessions[2].client.ping();
  });
});

describe('clients: listing the token subject and the certificate name joins them', () => {
  let gw: RunningGateway;
  let who: Who[];

  before(async () => {
    who = await identities();
    gw = await startMultiMode({
      ops: {
        apiKeys: [apiKeyDigest(OPS_KEY)],
        tokenSubjects: ['ops'],
        certificateNames: ['ops'],
        tools: { allow: ['echo'] },
        rateLimit: slow,
      },
      'jwt:ops': { tools: { allow: ['current_time'] } },
      'mtls:ops': { tools: { allow: ['long_task'] } },
    });
  });
  after(() => gw?.close());

  test('one client ops: one session usable by all three, one set of rules, one bucket', async () => {
    const { client, sessionId } = await connect(gw.url, who[0]);
    try {
      assert.equal(gw.gateway.app.get(SessionService).get(sessionId)?.clientId, 'ops');
      const headers = { 'mcp-session-id': sessionId, 'mcp-protocol-version': VERSION };
      for (const w of who) {
        const got = await post(gw.url, w, { jsonrpc: '2.0', id: rawId(), method: 'tools/list' }, headers);
        assert.equal(got.status, 200, `${w.name}: ${JSON.stringify(got.body)}`);
        assert.ok(got.body.result, `${w.name}: ${JSON.stringify(got.body)}`);
        const tools = (got.body.result as { tools: Array<{ name: string }> }).tools.map((t) => t.name);
        assert.deepEqual(tools, ['echo'], `${w.name} has the rules of ops`);
      }
      await exhaust(client);
      for (const w of who.slice(1)) {
        const got = await post(gw.url, w, { jsonrpc: '2.0', id: rawId(), method: 'ping' }, headers);
        assert.equal(got.body.error?.code, RATE_LIMITED, `${w.name} spends the bucket of ops`);
      }
    } finally {
      await client.close();
    }
  });
});

describe('a certificate name that is not a valid client id', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startMultiMode({ ops: { apiKeys: [apiKeyDigest(OPS_KEY)] } });
  });
  after(() => gw?.close());

  test('is refused with 403 bad_certificate_name; a valid one in the same gateway is admitted', async () => {
    for (const cn of ['ops admin', 'ops/admin', '*.example.com', 'ops"<script>']) {
      const got = await post(gw.url, { name: cn, headers: {}, cert: ca.issue(cn) }, INIT);
      assert.equal(got.status, 403, `CN ${JSON.stringify(cn)}`);
      assert.equal(got.body.error?.data?.reason, 'bad_certificate_name');
      assert.match(got.body.error?.message ?? '', /certificate's subject CN is not a valid client id/);
    }
    assert.equal((await post(gw.url, { name: 'ops', headers: {}, cert: opsCert }, INIT)).status, 200);
  });

  test("with another credential beside it, the request is that credential's client", async () => {
    const got = await post(
      gw.url,
      { name: 'bad + key', headers: { 'x-api-key': OPS_KEY }, cert: ca.issue('ops admin') },
      INIT,
    );
    assert.equal(got.status, 200, JSON.stringify(got.body));
  });
});
