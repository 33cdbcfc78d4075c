/**
 * TLS: with a certificate configured the one port speaks HTTPS for every HTTP transport,
 * and a renewed certificate is picked up without a restart.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { TlsReloadService } from '../src/transports/http/tls-reload.service';
import { makeSelfSignedCert, type TestCert } from './helpers/certs';
import { startGateway, type RunningGateway } from './helpers/gateway';

function httpsGet(url: string, ca: Buffer, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: Record<string, unknown>; firstChunk: string }>((ok, fail) => {
    const req = httpsRequest(url, { ca, headers }, (res) => {
      res.once('data', (chunk: Buffer) => {
        ok({ status: res.statusCode ?? 0, headers: res.headers, firstChunk: chunk.toString() });
        req.destroy();
      });
      res.once('end', () => ok({ status: res.statusCode ?? 0, headers: res.headers, firstChunk: '' }));
    });
    req.once('error', fail);
    req.end();
  });
}

function peerCertificate(port: number, ca: Buffer): Promise<PeerCertificate> {
  return new Promise((ok, fail) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      ok(cert);
    });
    socket.once('error', fail);
  });
}

describe('TLS', () => {
  let cert: TestCert;
  let gw: RunningGateway;
  let port: number;

  before(async () => {
    cert = makeSelfSignedCert('gateway-one');
    gw = await startGateway(
      {},
      { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, TLS_RELOAD_INTERVAL_MS: '0' },
    );
    port = Number(new URL(gw.url).port);
  });

  after(() => gw.close());

  test('the gateway URL is https and /health answers over TLS', async () => {
    assert.match(gw.url, /^https:\/\//);
    const res = await httpsGet(`${gw.url}/health`, readFileSync(cert.certFile));
    assert.equal(res.status, 200);
    assert.match(res.firstChunk, /"status":"ok"/);
  });

  test('legacy SSE streams over HTTPS', async () => {
    const res = await httpsGet(`${gw.url}/sse`, readFileSync(cert.certFile), { accept: 'text/event-stream' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream');
  });

  test('WebSocket over TLS (wss://) on the same port carries MCP', async () => {
    const ws = new WebSocket(`${gw.url.replace(/^https/, 'wss')}/ws`, 'mcp', {
      ca: readFileSync(cert.certFile),
    });
    const frames: any[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
    await new Promise<void>((ok, fail) => {
      ws.once('open', () => ok());
      ws.once('error', fail);
    });
    ws.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-06-18',
          capabilities: {},
          clientInfo: { name: 'wss', version: '1' },
        },
      }),
    );
    const deadline = Date.now() + 5000;
    while (!frames.some((f) => f.id === 1) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const answer = frames.find((f) => f.id === 1);
    assert.ok(answer?.result?.serverInfo, 'initialize answered over wss');
    ws.close(1000);
  });

  test('plain HTTP on the TLS port is refused', async () => {
    await assert.rejects(fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(3000) }));
  });

  test('a renewed certificate is served to new connections without a restart', async () => {
    const before = await peerCertificate(port, readFileSync(cert.certFile));
    assert.equal(before.subject.CN, 'gateway-one');
    makeSelfSignedCert('gateway-two', cert.dir);
    const reloaded = gw.gateway.app.get(TlsReloadService).reloadIfChanged();
    assert.equal(reloaded, true);
    const afterRenewal = await peerCertificate(port, readFileSync(cert.certFile));
    assert.equal(afterRenewal.subject.CN, 'gateway-two');
    const res = await httpsGet(`${gw.url}/health`, readFileSync(cert.certFile));
    assert.equal(res.status, 200);
  });

  test('a broken renewal keeps the current certificate', async () => {
    // Independent of the renewal test: whatever certificate is served now must still be served.
    const current = readFileSync(cert.certFile);
    const served = await peerCertificate(port, current);
    writeFileSync(
      cert.certFile,
      '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n',
    );
    try {
      assert.equal(gw.gateway.app.get(TlsReloadService).reloadIfChanged(), false);
      const still = await peerCertificate(port, current);
      assert.equal(still.subject.CN, served.subject.CN);
      assert.equal(still.fingerprint256, served.fingerprint256);
      const res = await httpsGet(`${gw.url}/health`, current);
      assert.equal(res.status, 200);
    } finally {
      writeFileSync(cert.certFile, current); // later tests see a valid file again
    }
  });
});
