import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import type { GatewayConfig } from '../config/gateway-config';
import { Admission, authConfigProblems } from './admission';
import type { Identity, Refusal } from './identity';
import {
  ApiKeys,
  apiKeyDigest,
  isRefusal,
  looksLikeJwt,
  subprotocolToken,
  WS_TOKEN_PREFIX,
} from './identity';

const KEY = 'secret-key-of-alice-0123456789';

function setup(overrides: Partial<GatewayConfig['auth']> = {}) {
  const lines: Array<{ level: string; line: Record<string, unknown> }> = [];
  const counted: string[] = [];
  const config = {
    host: '127.0.0.1',
    tls: undefined,
    trustedProxies: ['10.0.0.1'],
    s5: { timeoutMs: 50, defaultVerdict: 'allow' as const },
    clients: { alice: { apiKeys: [apiKeyDigest(KEY)], disabled: false } },
    auth: {
      modes: ['api_key' as const],
      jwtSecret: undefined,
      jwksUrl: undefined,
      jwksCooldownMs: 0,
      issuers: undefined,
      audiences: undefined,
      clockToleranceS: 0,
      clientIdClaim: 'sub',
      requiredScopes: [],
      authorizationServers: [],
      scopesSupported: undefined,
      publicUrl: undefined,
      mtlsClientId: 'cn' as const,
      wsQueryToken: false,
      ...overrides,
    },
  };
  const admission = new Admission(
    config,
    { authRefused: (r) => counted.push(r), authAdmitted: () => {} },
    {
      log: (line) => lines.push({ level: 'info', line: line as Record<string, unknown> }),
      warn: (line) => lines.push({ level: 'warn', line: line as Record<string, unknown> }),
    },
    undefined,
  );
  return { admission, lines, counted };
}

const socket = { remoteAddress: '10.0.0.1' } as Socket;

describe('Admission', () => {
  test('a refusal is one audit line with correlation id, client, address (via a trusted proxy), reason; never the key', () => {
    const { admission, lines, counted } = setup();
    const verdict = <Identity | Refusal>admission.authenticate({
      transport: 'sse',
      headers: { authorization: 'Bearer wrong-key-value', 'x-forwarded-for': '203.0.113.9' },
      socket,
    });
    assert.ok(isRefusal(verdict) && verdict.reason === 'invalid_api_key');
    assert.deepEqual(counted, ['invalid_api_key']);
    assert.equal(lines.length, 1);
    const { level, line } = lines[0];
    assert.equal(level, 'warn');
    assert.equal(line.event, 'refused');
    assert.equal(line.address, '203.0.113.9');
    assert.equal(line.transport, 'sse');
    assert.equal(line.reason, 'invalid_api_key');
    assert.match(String(line.correlationId), /^[0-9a-f-]{36}$/);
    assert.ok(!JSON.stringify(lines).includes('wrong-key-value'), 'the credential is never logged');
  });

  test('an admitted session is audited once, without the key', async () => {
    const { admission, lines } = setup();
    const req = { transport: 'ws' as const, headers: { 'x-api-key': KEY }, socket };
    const identity = await admission.admit(req);
    assert.ok(!isRefusal(identity) && identity.clientId === 'alice' && identity.via === 'api_key');
    assert.equal(lines.length, 1);
    assert.equal(lines[0].line.event, 'admitted');
    assert.equal(lines[0].line.clientId, 'alice');
    assert.ok(!JSON.stringify(lines).includes(KEY));
  });

  test('a team check that never answers is bounded by the S5 timeout (503), never a hang', async () => {
    const { admission } = setup();
    admission.use({ name: 'slow', check: () => new Promise(() => {}) });
    const verdict = await admission.admit({ transport: 'streamable', headers: { 'x-api-key': KEY }, socket });
    assert.ok(isRefusal(verdict));
    assert.equal(verdict.status, 503);
    assert.equal(verdict.reason, 'check_timeout');
  });

  test('S5 allowedClients limits who is admitted; null lifts it', () => {
    const { admission } = setup();
    const req = { transport: 'streamable' as const, headers: { 'x-api-key': KEY }, socket };
    admission.applyConstraints({ allowedClients: ['bob'] });
    const refused = admission.authenticate(req) as Identity | Refusal;
    assert.ok(isRefusal(refused) && refused.reason === 'client_not_allowed' && refused.status === 403);
    admission.applyConstraints({ allowedClients: null });
    assert.ok(!isRefusal(admission.authenticate(req) as never));
  });

  test('configuration problems: non-loopback bind without AUTH_MODE, modes without what they need', () => {
    const base = { clients: {}, tls: undefined };
    const auth = setup().admission['config'].auth;
    assert.match(
      authConfigProblems({ ...base, host: '0.0.0.0', auth: { ...auth, modes: undefined } })[0],
      /AUTH_MODE/,
    );
    assert.deepEqual(
      authConfigProblems({ ...base, host: '0.0.0.0', auth: { ...auth, modes: ['none'] } }),
      [],
    );
    assert.match(
      authConfigProblems({ ...base, host: '127.0.0.1', auth: { ...auth, modes: ['jwt'] } })[0],
      /AUTH_JWT_SECRET/,
    );
    assert.match(
      authConfigProblems({ ...base, host: '127.0.0.1', auth: { ...auth, modes: ['mtls'] } })[0],
      /TLS_CA_FILE/,
    );
  });
});

describe('credentials', () => {
  test('API keys: every digest of a client works (rotation); others do not', () => {
    const keys = new ApiKeys({ a: { apiKeys: [apiKeyDigest('k1'), apiKeyDigest('k2')], disabled: false } });
    assert.equal(keys.clientOf('k1'), 'a');
    assert.equal(keys.clientOf('k2'), 'a');
    assert.equal(keys.clientOf('k3'), undefined);
  });

  test('SEP-1288 subprotocol token and JWT shape', () => {
    const entry = `${WS_TOKEN_PREFIX}${Buffer.from('tok.en').toString('base64url')}`;
    assert.equal(subprotocolToken(`mcp, ${entry}`), 'tok.en');
    assert.equal(subprotocolToken('mcp'), undefined);
    assert.equal(subprotocolToken(`${WS_TOKEN_PREFIX}not base64!`), undefined);
    assert.equal(looksLikeJwt('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig'), true);
    assert.equal(looksLikeJwt('plain-api-key'), false);
  });
});
