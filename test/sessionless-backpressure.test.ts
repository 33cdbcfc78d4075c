/**
 * The 2026-07-28 bridge under volume: large answers do not stall the hidden session, a
 * subscriber that stops reading is cut off at a bound instead of buffering without limit, and
 * idle bridges are evicted.
 */
import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { SessionService } from '../src/session/session.module';
import { StreamableHttpRoutes } from '../src/transports/streamable-http/streamable-http.routes';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { messagesOf, raw, readSse, sessionlessHeaders } from './helpers/streamable-http-client';

const MODERN = '2026-07-28';
const BULK = join(__dirname, 'fixtures', 'bulk-server.js');
const OUTBOX_MAX_BYTES = 256 * 1024;

function meta(extra: Record<string, unknown> = {}) {
  return {
    'io.modelcontextprotocol/protocolVersion': MODERN,
    'io.modelcontextprotocol/clientCapabilities': {},
    'io.modelcontextprotocol/clientInfo': { name: 'backpressure-test', version: '1.0.0' },
    ...extra,
  };
}

function callBody(
  id: number | string,
  name: string,
  args: Record<string, unknown>,
  extra?: Record<string, unknown>,
) {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: args, _meta: meta(extra) },
  });
}

/** Rejects when `promise` takes longer than `ms` (a hang must fail the test, not time it out). */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, fail) => {
      timer = setTimeout(() => fail(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]);
}

function errorCount(gw: RunningGateway, kind: string): number {
  return gw.gateway.app.get(GatewayMetrics).errors.get(kind) ?? 0;
}

function bridgeCount(gw: RunningGateway): number {
  return gw.gateway.app.get(StreamableHttpRoutes).handler.sessionless!.bridgeCount;
}

describe('2026-07-28 bridge: backpressure and bounds', () => {
  let gw: RunningGateway;
  let base: string;

  before(async () => {
    gw = await startGateway(
      {
        services: { bulk: { replicas: [{ transport: 'stdio', command: process.execPath, args: [BULK] }] } },
        defaultService: 'bulk',
      },
      { OUTBOX_MAX_BYTES: String(OUTBOX_MAX_BYTES) },
    );
    base = gw.url;
  });
  after(async () => {
    await gw.close();
  });

  it('a 64 KiB answer (streamed after a 64 KiB progress event) does not stall the requests after it', async () => {
    const client = 'big-client';
    const bytes = 64 * 1024;
    for (let round = 0; round < 3; round++) {
      const res = await within(
        5000,
        `big answer ${round}`,
        fetch(`${base}/mcp`, {
          method: 'POST',
          headers: sessionlessHeaders('tools/call', client, 'big'),
          body: callBody(`big-${round}`, 'big', { bytes }, { progressToken: `tok-${round}` }),
        }).then(async (r) => ({ status: r.status, ...(await readSse(r)) })),
      );
      assert.equal(res.status, 200);
      const messages = messagesOf(res.events);
      assert.equal(messages[0].method, 'notifications/progress');
      assert.equal(messages[0].params.message.length, bytes);
      assert.equal(messages.at(-1).id, `big-${round}`);
      assert.equal(messages.at(-1).result.content[0].text.length, bytes);
      // Plain JSON answers of the same size, and small ones, on the same hidden session.
      const json = await within(
        5000,
        `json answer ${round}`,
        raw(base, {
          headers: sessionlessHeaders('tools/call', client, 'big'),
          body: callBody(`j-${round}`, 'big', { bytes }),
        }),
      );
      assert.equal(json.status, 200, json.text);
      assert.equal(json.json.result.content[0].text.length, bytes);
    }
    const echoes = await within(
      5000,
      'echoes after the big answers',
      Promise.all(
        [1, 2, 3, 4, 5].map((n) =>
          raw(base, {
            headers: sessionlessHeaders('tools/call', client, 'echo'),
            body: callBody(n, 'echo', { text: `e${n}` }),
          }),
        ),
      ),
    );
    assert.deepEqual(
      echoes.map((e) => e.json?.result?.content?.[0]?.text),
      ['e1', 'e2', 'e3', 'e4', 'e5'],
    );
  });

  it('a subscriber that stops reading is ended with an error past the outbox bound; others are served', async () => {
    const client = 'flood-client';
    const before = errorCount(gw, 'listener_overflow');
    // A raw HTTP client whose response we pause: the TCP window fills and the gateway must not buffer the rest.
    const listenBody = JSON.stringify({
      jsonrpc: '2.0',
      id: 'slow-sub',
      method: 'subscriptions/listen',
      params: { _meta: meta(), notifications: { toolsListChanged: true } },
    });
    const url = new URL('/mcp', base);
    const slow = await new Promise<IncomingMessage>((ok, fail) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: sessionlessHeaders('subscriptions/listen', client),
        },
        ok,
      );
      req.on('error', fail);
      req.end(listenBody);
    });
    assert.equal(slow.statusCode, 200);
    slow.pause();
    const count = 20_000;
    const pad = 1000;
    // ~20 MB of notifications towards a reader that takes none of them.
    const flood = await within(
      30_000,
      'flood',
      raw(base, {
        headers: sessionlessHeaders('tools/call', client, 'flood'),
        body: callBody('fl', 'flood', { count, bytes: pad }),
      }),
    );
    assert.equal(flood.status, 200, flood.text);
    assert.equal(flood.json.result.content[0].text, `flooded ${count}`);
    assert.equal(errorCount(gw, 'listener_overflow'), before + 1);
    // Now read what the gateway kept for it: far less than was sent, ending with the error.
    const chunks: Buffer[] = [];
    slow.on('data', (c: Buffer) => chunks.push(c));
    slow.resume();
    await within(10_000, 'end of the slow stream', new Promise<void>((ok) => slow.once('end', ok)));
    const text = Buffer.concat(chunks).toString('utf8');
    assert.ok(text.length < (count * pad) / 4, `only a bounded part was buffered (${text.length} bytes)`);
    const events = text.split('\n\n').filter((b) => b.includes('data: '));
    const last = JSON.parse(events.at(-1)!.slice(events.at(-1)!.indexOf('data: ') + 6));
    assert.equal(last.id, 'slow-sub');
    assert.equal(last.error.code, -32603);
    assert.match(last.error.message, /reads too slowly/);
    // The bridge still serves the client.
    const echo = await within(
      5000,
      'echo after the flood',
      raw(base, {
        headers: sessionlessHeaders('tools/call', client, 'echo'),
        body: callBody('after', 'echo', { text: 'ok' }),
      }),
    );
    assert.equal(echo.json.result.content[0].text, 'ok');
  });
});

describe('2026-07-28 bridge: idle bridges are evicted', () => {
  let gw: RunningGateway;
  let base: string;
  const MAX = 4;

  before(async () => {
    gw = await startGateway(
      {
        services: { bulk: { replicas: [{ transport: 'stdio', command: process.execPath, args: [BULK] }] } },
        defaultService: 'bulk',
      },
      {
        SESSION_IDLE_TIMEOUT_MS: '60000',
        SESSION_SWEEP_INTERVAL_MS: '100',
        SESSIONLESS_MAX_BRIDGES: String(MAX),
      },
    );
    base = gw.url;
  });
  after(async () => {
    await gw.close();
  });

  it('past SESSIONLESS_MAX_BRIDGES the least recently used idle bridge goes, and idle ones expire', async () => {
    const sessions = gw.gateway.app.get(SessionService);
    for (let n = 0; n < 10; n++) {
      const res = await raw(base, {
        headers: sessionlessHeaders('tools/call', `idle-${n}`, 'echo'),
        body: callBody(n, 'echo', { text: `i${n}` }),
      });
      assert.equal(res.json?.result?.content?.[0]?.text, `i${n}`, res.text);
      assert.ok(bridgeCount(gw) <= MAX, `at most ${MAX} bridges (${bridgeCount(gw)})`);
      assert.ok(sessions.size <= MAX, `evicted bridges ended their hidden sessions (${sessions.size})`);
    }
    assert.equal(errorCount(gw, 'bridge_evicted'), 10 - MAX);
    // The first client is served again on a fresh bridge.
    const again = await raw(base, {
      headers: sessionlessHeaders('tools/call', 'idle-0', 'echo'),
      body: callBody('a', 'echo', { text: 'again' }),
    });
    assert.equal(again.json?.result?.content?.[0]?.text, 'again', again.text);
    // The idle timeout passes (driven, not waited for); the bridges' own sweep then forgets them.
    assert.equal(sessions.sweep(Date.now() + 61_000), MAX);
    const deadline = Date.now() + 5000;
    while (bridgeCount(gw) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(bridgeCount(gw), 0, 'idle bridges are gone');
    assert.equal(sessions.size, 0, 'and so are their hidden sessions');
  });
});
