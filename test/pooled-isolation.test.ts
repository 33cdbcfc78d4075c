/**
 * Pooled-mode isolation, the two defects as they were measured, against the real app and a stdio
 * server-everything shared by every client (pool max 1, so all calls run on one upstream session):
 *
 * - an answer to a server→client request is taken only from the session it was sent to: another
 *   API-key client that POSTs `{"id": <the id A saw>, "result": …}` on its own session changes
 *   nothing, and A's tool result carries A's answer;
 * - a log line no request's stream carries (server-everything's periodic logging, turned on by A)
 *   never reaches B just because B's call holds the upstream session at that moment: it is
 *   dropped and counted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  LoggingMessageNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { PoolManager } from '../src/pool/pool-manager.service';
import { apiKeyDigest } from '../src/policy/identity';
import { everythingStdioReplica } from './helpers/everything';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { BOTH, raw } from './helpers/streamable-http-client';

const ALICE = 'alice-key-0123456789abcdef';
const BOB = 'bob-key-0123456789abcdef';

function pooledEverything() {
  return {
    mode: 'pooled' as const,
    pool: { min: 0, max: 1, maxWaitingClients: 100, acquireTimeoutMs: 20_000 },
    replicas: [everythingStdioReplica()],
  };
}

/** An SDK client over Streamable HTTP, with an API key when given. */
async function connect(
  base: string,
  name: string,
  key?: string,
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name, version: '1.0.0' }, { capabilities: { sampling: {} } });
  const transport = new StreamableHTTPClientTransport(new URL('/mcp', base), {
    requestInit: key ? { headers: { 'x-api-key': key } } : undefined,
  });
  await client.connect(transport);
  return { client, transport };
}

describe('pooled isolation: answers to server requests (two API-key clients, one upstream session)', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway(
      {
        defaultService: 'everything',
        services: { everything: pooledEverything() },
        clients: {
          alice: { apiKeys: [apiKeyDigest(ALICE)], disabled: false },
          bob: { apiKeys: [apiKeyDigest(BOB)], disabled: false },
        },
      },
      { AUTH_MODE: 'api_key' },
    );
  });
  after(() => gw?.close());

  test('another client POSTing an answer to the id A saw does not affect A’s result', async () => {
    const alice = await connect(gw.url, 'alice', ALICE);
    const bob = await connect(gw.url, 'bob', BOB);
    let askedId: string | number | undefined;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let seen!: () => void;
    const asked = new Promise<void>((r) => (seen = r));
    alice.client.setRequestHandler(CreateMessageRequestSchema, async (_request, extra) => {
      askedId = extra.requestId;
      seen();
      await released;
      return { role: 'assistant', content: { type: 'text', text: 'genuine answer of alice' }, model: 'm' };
    });
    const errors = () => gw.gateway.app.get(GatewayMetrics).errors.get('unrequested_answer') ?? 0;
    const before = errors();

    const call = alice.client.callTool({
      name: 'trigger-sampling-request',
      arguments: { prompt: 'hello', maxTokens: 5 },
    });
    await asked;

    // Bob answers it on his own session, as any client of the service could.
    const forged = await raw(gw.url, {
      headers: {
        'content-type': 'application/json',
        accept: BOTH,
        'mcp-session-id': bob.transport.sessionId!,
        'mcp-protocol-version': bob.transport.protocolVersion ?? '2025-11-25',
        'x-api-key': BOB,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: askedId,
        result: { role: 'assistant', content: { type: 'text', text: 'FORGED by bob' }, model: 'm' },
      }),
    });
    assert.equal(forged.status, 202, forged.text);

    release();
    const result = (await call) as { content: Array<{ text: string }> };
    const text = JSON.stringify(result.content);
    assert.match(text, /genuine answer of alice/);
    assert.doesNotMatch(text, /FORGED/);
    assert.equal(errors(), before + 1, 'the dropped answer is counted');
    // Not a process counter: nothing about one client's ids tells another what to forge.
    assert.match(
      String(askedId),
      /^gs-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
      'unguessable id',
    );
    await Promise.all([alice.client.close(), bob.client.close()]);
  });
});

describe('pooled isolation: log lines (anonymous clients, one upstream session)', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway({ defaultService: 'everything', services: { everything: pooledEverything() } });
  });
  after(() => gw?.close());

  test('A’s periodic log lines never reach B during B’s long call; they are dropped and counted', async () => {
    const a = await connect(gw.url, 'a');
    const b = await connect(gw.url, 'b');
    const lines = { a: [] as string[], b: [] as string[] };
    a.client.setNotificationHandler(
      LoggingMessageNotificationSchema,
      (n) => void lines.a.push(String(n.params.data)),
    );
    b.client.setNotificationHandler(
      LoggingMessageNotificationSchema,
      (n) => void lines.b.push(String(n.params.data)),
    );
    const dropped = () =>
      gw.gateway.app.get(PoolManager).isolationCounts().unattributed.get('notifications/message') ?? 0;

    // server-everything logs once at once, then every 5 s (stdio: on no request's stream).
    await a.client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
    try {
      // B's call holds the only upstream session while the 5-second line comes.
      const long = await b.client.callTool({
        name: 'trigger-long-running-operation',
        arguments: { duration: 6, steps: 2 },
      });
      assert.ok(long.content, 'B’s call completed');
    } finally {
      await a.client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
    }
    assert.deepEqual(lines.b, [], 'B got none of A’s log lines');
    assert.deepEqual(lines.a, [], 'nor A: a line on no request’s stream is attributed to nobody');
    assert.ok(dropped() >= 2, `the immediate and the periodic line were counted (${dropped()})`);
    await Promise.all([a.client.close(), b.client.close()]);
  });
});
