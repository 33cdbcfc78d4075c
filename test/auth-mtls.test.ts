/**
 * mTLS authentication: with AUTH_MODE=mtls the client id is the verified client certificate's
 * subject CN (or SAN); a connection without a verified certificate gets 401.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { SessionService } from '../src/session/session.module';
import { makeSelfSignedCert, type TestCert } from './helpers/certs';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { clientCa } from './helpers/client-certs';

const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'mtls', version: '1' } },
});

/** A CA and one client certificate it signed (CN client-7, SAN DNS:svc-7.example), made with openssl. */
function clientCertificate(dir: string): { caFile: string; cert: Buffer; key: Buffer } {
  const ca = clientCa(dir);
  return { caFile: ca.caFile, ...ca.issue('client-7', 'svc-7.example') };
}

function initialize(
  base: string,
  tls: { ca: Buffer; cert?: Buffer; key?: Buffer },
): Promise<{ status: number; sessionId?: string; challenge?: string }> {
  const url = new URL('/mcp', base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        ...tls,
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            sessionId: res.headers['mcp-session-id'] as string | undefined,
            challenge: res.headers['www-authenticate'] as string | undefined,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(INIT);
  });
}

for (const from of ['cn', 'san'] as const) {
  describe(`mTLS authentication (client id from the ${from})`, () => {
    let server: TestCert;
    let client: ReturnType<typeof clientCertificate>;
    let gw: RunningGateway;

    before(async () => {
      server = makeSelfSignedCert('127.0.0.1');
      client = clientCertificate(server.dir);
      gw = await startGateway(
        {},
        {
          TLS_CERT_FILE: server.certFile,
          TLS_KEY_FILE: server.keyFile,
          TLS_CA_FILE: client.caFile,
          // request, not require: so the test sees the 401 a certificate-less client gets from the gateway.
          TLS_CLIENT_CERT: 'request',
          AUTH_MODE: 'mtls',
          AUTH_MTLS_CLIENT_ID: from,
        },
      );
    });
    after(() => gw?.close());

    test('a verified certificate names the client; none gets 401', async () => {
      const ca = readFileSync(server.certFile);
      const ok = await initialize(gw.url, { ca, cert: client.cert, key: client.key });
      assert.equal(ok.status, 200);
      const session = gw.gateway.app.get(SessionService).get(ok.sessionId);
      assert.equal(session?.clientId, from === 'cn' ? 'client-7' : 'svc-7.example');
      assert.equal(gw.gateway.app.get(GatewayMetrics).authAdmissions.get('mtls'), 1);
      const none = await initialize(gw.url, { ca });
      assert.equal(none.status, 401);
      assert.match(String(none.challenge), /^Bearer realm="mcp-gateway"/);
    });
  });
}
