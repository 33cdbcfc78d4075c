/**
 * Per-client rate limits over the three client transports with official SDK clients against the
 * embedded demo upstream: a burst past the limit is refused (Streamable HTTP: 429 with Retry-After
 * and the IETF RateLimit / RateLimit-Policy headers; WebSocket and legacy SSE: −31004 with
 * retryAfterMs, in-band), the bucket refills, per-client and per-tool limits, S3
 * adjust_rate_limit and S5 policy_update change the next request, notifications do not count.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { VsmBus } from '../src/vsm/vsm-bus.service';
import { VsmChannel } from '../src/vsm/vsm.channels';
import { CLIENT_TRANSPORTS, type ClientTransportName } from './helpers/clients';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { connectAs } from './helpers/policy-clients';

const RATE_LIMITED = -31004;

/** A request that must be refused by the rate limit; returns the wait the gateway named. */
async function rateLimited(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof McpError, `expected an McpError, got ${String(err)}`);
    assert.equal(err.code, RATE_LIMITED, err.message);
    const retryAfterMs = (err.data as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
    assert.equal(typeof retryAfterMs, 'number');
    return retryAfterMs as number;
  }
  assert.fail('expected a rate-limit refusal');
}

/**
 * Over Streamable HTTP a refusal is an HTTP 429, which the SDK turns into a transport error: the
 * refused request is sent with fetch on the SDK client's session to see the status and headers.
 */
async function rawPost(
  base: string,
  transport: StreamableHTTPClientTransport,
  clientId: string,
  body: unknown,
): Promise<Response> {
  return fetch(`${base}/mcp?client_id=${clientId}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-session-id': transport.sessionId!,
      'mcp-protocol-version': '2025-11-25',
    },
    body: JSON.stringify(body),
  });
}

/** Asserts the next request of `client` (as `clientId`) is refused; returns the wait named. */
async function nextRefused(
  gw: RunningGateway,
  kind: ClientTransportName,
  c: { client: Client; transport: unknown },
  clientId: string,
  request: { method: string; params?: Record<string, unknown> } = { method: 'ping' },
): Promise<number> {
  if (kind !== 'streamable') {
    return rateLimited(
      request.method === 'ping' ? c.client.ping() : c.client.callTool(request.params as { name: string }),
    );
  }
  const res = await rawPost(gw.url, c.transport as StreamableHTTPClientTransport, clientId, {
    jsonrpc: '2.0',
    id: 'refused-1',
    ...request,
  });
  assert.equal(res.status, 429);
  const retryAfter = Number(res.headers.get('retry-after'));
  assert.ok(retryAfter >= 1, `Retry-After ${res.headers.get('retry-after')}`);
  assert.match(res.headers.get('ratelimit-policy') ?? '', /^"(default|client|tool)";q=\d+;w=\d+$/);
  assert.match(res.headers.get('ratelimit') ?? '', /^"(default|client|tool)";r=0;t=\d+$/);
  const body = (await res.json()) as { id: unknown; error: { code: number; data: { retryAfterMs: number } } };
  assert.equal(body.id, 'refused-1');
  assert.equal(body.error.code, RATE_LIMITED);
  return body.error.data.retryAfterMs;
}

describe('per-client rate limits', () => {
  let gw: RunningGateway;
  let metrics: GatewayMetrics;
  let vsm: VsmBus;
  before(async () => {
    gw = await startGateway({
      rateLimit: { enabled: true, perSecond: 1000, burst: 1000 },
      clients: {
        // Per transport: `<kind>-burst` holds 3 tokens refilled at 2/s (slow enough for a loaded machine).
        ...Object.fromEntries(
          CLIENT_TRANSPORTS.map((k) => [`${k}-burst`, { rateLimit: { perSecond: 2, burst: 3 } }]),
        ),
        ...Object.fromEntries(
          CLIENT_TRANSPORTS.map((k) => [`${k}-notify`, { rateLimit: { perSecond: 0.01, burst: 3 } }]),
        ),
        ...Object.fromEntries(
          CLIENT_TRANSPORTS.map((k) => [
            `${k}-tool`,
            { rateLimit: { tools: { current_time: { perSecond: 0.2, burst: 1 } } } },
          ]),
        ),
      },
    });
    metrics = gw.gateway.app.get(GatewayMetrics);
    vsm = gw.gateway.app.get(VsmBus);
  });
  after(() => gw.close());

  for (const kind of CLIENT_TRANSPORTS) {
    describe(kind, () => {
      test('notifications do not count', async () => {
        const id = `${kind}-notify`;
        const c = await connectAs(gw.url, kind, id); // initialize: 1 of 3 tokens, refilled once in 100 s
        try {
          for (let i = 0; i < 20; i++)
            await c.client.notification({ method: 'notifications/cancelled', params: { requestId: 'none' } });
          await c.client.ping();
          await c.client.ping();
          await nextRefused(gw, kind, c, id);
        } finally {
          await c.client.close();
        }
      });

      test('a burst past the limit is refused with the wait; the bucket refills', async () => {
        const id = `${kind}-burst`;
        const before = metrics.rateLimited[kind];
        const c = await connectAs(gw.url, kind, id); // initialize: 1 of 3 tokens
        try {
          // Two more are served (three when the connect was slow enough for a refill), then refusals.
          let served = 0;
          while (
            served < 6 &&
            (await c.client.ping().then(
              () => true,
              () => false,
            ))
          )
            served++;
          assert.ok(served >= 2 && served <= 3, `served ${served} pings`);
          const wait = await nextRefused(gw, kind, c, id);
          assert.ok(wait > 0 && wait <= 500, `retryAfterMs ${wait}`);
          assert.equal(metrics.rateLimited[kind] - before, 2);
          await new Promise((r) => setTimeout(r, wait + 5));
          // Refilled: one token, and the next request is served.
          const result = await c.client.callTool({ name: 'echo', arguments: { text: 'still here' } });
          assert.ok(JSON.stringify(result.content).includes('still here'));
        } finally {
          await c.client.close();
        }
      });

      test('a per-tool limit refuses that tool only', async () => {
        const id = `${kind}-tool`;
        const c = await connectAs(gw.url, kind, id);
        try {
          await c.client.callTool({ name: 'current_time', arguments: {} });
          const call = { method: 'tools/call', params: { name: 'current_time', arguments: {} } };
          const wait = await nextRefused(gw, kind, c, id, call);
          assert.ok(wait > 1000, `retryAfterMs ${wait}`);
          const echo = await c.client.callTool({ name: 'echo', arguments: { text: 'other tool' } });
          assert.ok(JSON.stringify(echo.content).includes('other tool'));
        } finally {
          await c.client.close();
        }
      });

      test('S3 adjust_rate_limit and S5 policy_update change the next request', async () => {
        const id = `${kind}-live`;
        const c = await connectAs(gw.url, kind, id);
        try {
          await c.client.ping();
          vsm.publish(VsmChannel.S3Control, { type: 'adjust_rate_limit', clientId: id, newLimit: 0 });
          await nextRefused(gw, kind, c, id);
          vsm.publish(VsmChannel.S3Control, { type: 'adjust_rate_limit', clientId: id, newLimit: 1000 });
          await c.client.ping();

          const s5 = `${kind}-s5`;
          const d = await connectAs(gw.url, kind, s5);
          try {
            await d.client.ping();
            vsm.publish(VsmChannel.S5Policy, {
              type: 'policy_update',
              scope: 'gateway',
              constraints: { clients: { [s5]: { rateLimit: { perSecond: 0 } } } },
            });
            await nextRefused(gw, kind, d, s5);
            vsm.publish(VsmChannel.S5Policy, {
              type: 'policy_update',
              scope: 'gateway',
              constraints: { clients: { [s5]: null } },
            });
            await d.client.ping();
          } finally {
            await d.client.close();
          }
        } finally {
          await c.client.close();
        }
      });
    });
  }

  test('S5 policy_update of the default rate limit applies to every client without its own', async () => {
    const c = await connectAs(gw.url, 'ws', 'default-follower');
    try {
      await c.client.ping();
      vsm.publish(VsmChannel.S5Policy, {
        type: 'policy_update',
        scope: 'gateway',
        constraints: { rateLimit: { perSecond: 1, burst: 1 } },
      });
      await c.client.ping(); // the bucket now holds at most 1
      await rateLimited(c.client.ping());
    } finally {
      vsm.publish(VsmChannel.S5Policy, {
        type: 'policy_update',
        scope: 'gateway',
        constraints: { rateLimit: { perSecond: 1000, burst: 1000 } },
      });
      await c.client.close();
    }
  });

  test('anonymous clients are limited by their address', async () => {
    vsm.publish(VsmChannel.S5Policy, {
      type: 'policy_update',
      scope: 'gateway',
      constraints: { clients: { anonymous: { rateLimit: { perSecond: 0.01, burst: 3 } } } },
    });
    // Two anonymous sessions from one address share one bucket of 3: two initializes and one ping.
    const a = new Client({ name: 'anon-a', version: '1' });
    const b = new Client({ name: 'anon-b', version: '1' });
    await a.connect(new WebSocketClientTransport(new URL(gw.url.replace('http', 'ws') + '/ws')));
    await b.connect(new WebSocketClientTransport(new URL(gw.url.replace('http', 'ws') + '/ws')));
    try {
      await a.ping();
      await rateLimited(b.ping());
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('the admin API is rate-limited too (RateLimitGuard): 429 with Retry-After', async () => {
    const admin = await startGateway(
      { rateLimit: { enabled: true, perSecond: 1, burst: 2 } },
      { ADMIN_TOKEN: 'a-long-enough-admin-token' },
    );
    try {
      const get = () =>
        fetch(`${admin.url}/admin/services`, {
          headers: { authorization: 'Bearer a-long-enough-admin-token' },
        });
      assert.equal((await get()).status, 200);
      assert.equal((await get()).status, 200);
      const refused = await get();
      assert.equal(refused.status, 429);
      assert.ok(Number(refused.headers.get('retry-after')) >= 1);
      assert.match(refused.headers.get('ratelimit') ?? '', /^"default";r=0;t=\d+$/);
      assert.equal(admin.gateway.app.get(GatewayMetrics).rateLimited.admin, 1);
    } finally {
      await admin.close();
    }
  });
});

describe('2026-07-28 sessionless requests', () => {
  const MODERN = '2026-07-28';
  const meta = {
    'io.modelcontextprotocol/protocolVersion': MODERN,
    'io.modelcontextprotocol/clientCapabilities': {},
    'io.modelcontextprotocol/clientInfo': { name: 'modern-policy-test', version: '1.0.0' },
  };
  const post = (
    base: string,
    clientId: string,
    id: number,
    method: string,
    params: Record<string, unknown>,
  ) =>
    fetch(`${base}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': MODERN,
        'mcp-method': method,
        ...(typeof params.name === 'string' ? { 'mcp-name': params.name } : {}),
        'x-mcp-client-id': clientId,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta: meta } }),
    });
  /** The JSON-RPC answer of a POST, whether it came as JSON or as an SSE stream. */
  const answerOf = async (res: Response): Promise<{ result?: { tools?: Array<{ name: string }> } }> => {
    const text = await res.text();
    if ((res.headers.get('content-type') ?? '').startsWith('application/json')) return JSON.parse(text);
    const data = text
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => JSON.parse(l.slice(5)) as { id?: unknown })
      .find((m) => m.id !== undefined);
    return data as { result?: { tools?: Array<{ name: string }> } };
  };

  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway({
      rateLimit: { enabled: true, perSecond: 1000, burst: 1000 },
      clients: {
        modern: { rateLimit: { perSecond: 0.01, burst: 2 }, tools: { allow: ['echo'] } },
      },
    });
  });
  after(() => gw.close());

  test('lists are filtered, and past the limit the POST is 429 with the RateLimit headers', async () => {
    const list = await post(gw.url, 'modern', 1, 'tools/list', {});
    assert.equal(list.status, 200);
    assert.deepEqual(
      (await answerOf(list)).result?.tools?.map((t) => t.name),
      ['echo'],
    );
    const call = await post(gw.url, 'modern', 2, 'tools/call', { name: 'echo', arguments: { text: 'x' } });
    assert.equal(call.status, 200);
    await call.text();
    const refused = await post(gw.url, 'modern', 3, 'tools/call', { name: 'echo', arguments: { text: 'x' } });
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    assert.match(refused.headers.get('ratelimit-policy') ?? '', /^"client";q=2;w=\d+$/);
    const body = (await refused.json()) as { id: number; error: { code: number } };
    assert.equal(body.id, 3);
    assert.equal(body.error.code, RATE_LIMITED);
  });
});
