/**
 * Fuzzed credentials on the authenticated paths: random Authorization / X-API-Key values,
 * JWT-shaped garbage (valid-looking headers over random payloads and signatures) and SEP-1288
 * subprotocol tokens, on Streamable HTTP, legacy SSE and the WebSocket upgrade. Every case must be
 * a clean 401 (JSON-RPC −31008), never a 5xx, an admission or a process-level failure.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import * as fc from 'fast-check';
import { WebSocket } from 'ws';
import { GatewayMetrics } from '../../src/telemetry/gateway-metrics.service';
import { apiKeyDigest, WS_TOKEN_PREFIX } from '../../src/policy/identity';
import { startGateway, type RunningGateway } from '../helpers/gateway';
import { CrashRecorder, fuzzOptions, logCases } from './fuzz-kit';

const b64 = (s: string) => Buffer.from(s).toString('base64url');
/** Visible ASCII (what an HTTP header value may carry), up to a few hundred characters. */
const headerText = fc.string({
  unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 300,
});
const jwtShaped = fc
  .tuple(
    fc.constantFrom(
      '{"alg":"HS256"}',
      '{"alg":"none"}',
      '{"alg":"RS256","kid":"x"}',
      '{"alg":"HS256","crit":["b64"]}',
      '{',
    ),
    fc.oneof(fc.json(), headerText),
    headerText,
  )
  .map(([h, p, s]) => `${b64(h)}.${b64(p)}.${b64(s)}`);
const credential = fc.oneof(
  headerText.map((t) => ({ authorization: `Bearer ${t}` })),
  headerText.map((t) => ({ authorization: t })),
  jwtShaped.map((t) => ({ authorization: `Bearer ${t}` })),
  headerText.map((t) => ({ 'x-api-key': t })),
);

function status(base: string, path: string, method: string, headers: Record<string, string>, body?: string) {
  const url = new URL(path, base);
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname, method, headers },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        // A stream that opened (it must not) would never end: take the status and go.
        if (res.statusCode === 200 && path === '/sse') {
          resolve({ status: 200, body: '' });
          req.destroy();
        }
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function upgradeStatus(base: string, protocols: string[], headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(new URL('/ws', base.replace('http', 'ws')), protocols, { headers });
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('error', (err) => {
      if (!/Unexpected server response/.test(err.message)) reject(err);
    });
  });
}

const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'f', version: '1' } },
});

describe('fuzzed credentials', () => {
  let gw: RunningGateway;
  let metrics: GatewayMetrics;
  const crashes = new CrashRecorder();

  before(async () => {
    crashes.install();
    gw = await startGateway(
      { clients: { alice: { apiKeys: [apiKeyDigest('the-one-good-key-0123456789')], disabled: false } } },
      { AUTH_MODE: 'api_key,jwt', AUTH_JWT_SECRET: 'x'.repeat(40) },
    );
    metrics = gw.gateway.app.get(GatewayMetrics);
  });
  after(async () => {
    await gw?.close();
    crashes.uninstall();
  });

  test('every transport answers a clean 401 to every fuzzed credential', async () => {
    let cases = 0;
    await fc.assert(
      fc.asyncProperty(credential, fc.constantFrom('streamable', 'sse', 'ws'), async (headers, transport) => {
        cases++;
        let got: number;
        if (transport === 'streamable') {
          const r = await status(
            gw.url,
            '/mcp',
            'POST',
            {
              'content-type': 'application/json',
              accept: 'application/json, text/event-stream',
              ...headers,
            },
            INIT,
          );
          got = r.status;
          if (got === 401) assert.equal(JSON.parse(r.body).error.code, -31008);
        } else if (transport === 'sse') {
          got = (await status(gw.url, '/sse', 'GET', { accept: 'text/event-stream', ...headers })).status;
        } else {
          got = await upgradeStatus(gw.url, ['mcp'], headers);
        }
        assert.equal(got, 401, `${transport} ${JSON.stringify(headers).slice(0, 200)}`);
        await crashes.settle();
        crashes.assertNone(transport);
      }),
      fuzzOptions(150),
    );
    logCases('credentials', cases);
    assert.equal(metrics.authAdmissions.size, 0, 'nothing was admitted');
    assert.equal(metrics.internalErrors.size, 0, 'no error boundary fired');
  });

  test('fuzzed SEP-1288 subprotocol tokens are refused before the upgrade', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(headerText, jwtShaped), async (token) => {
        assert.equal(await upgradeStatus(gw.url, ['mcp', `${WS_TOKEN_PREFIX}${b64(token)}`], {}), 401);
      }),
      fuzzOptions(50),
    );
    assert.equal(metrics.internalErrors.size, 0);
  });
});
