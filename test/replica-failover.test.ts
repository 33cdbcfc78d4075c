/**
 * Replica failover that the client does not notice: three server-everything replicas over
 * Streamable HTTP behind one service; the replica serving a session is killed while calls
 * are in flight. Read-only calls are answered once (sent again on the next replica), a call
 * that may have had effects gets the clear −31001 error, and the session keeps its id and
 * goes on working on every client transport.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { CreateMessageRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCode } from '../libs/protocol/src';
import { NOT_RETRIED_MESSAGE } from '../src/pool/dedicated-port';
import { PoolManager } from '../src/pool/pool-manager.service';
import { Router } from '../src/routing/router.service';
import { VsmChannel, type AlgedonicEvent } from '../src/vsm/vsm.channels';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import { CLIENT_TRANSPORTS, endpointFor, type ClientTransportName } from './helpers/clients';
import { startEverythingHttp, type RunningEverything } from './helpers/everything';
import { startGateway, type RunningGateway } from './helpers/gateway';

/** The replica's PORT, as its get-env tool reports it: which replica answered. */
async function servingPort(client: Client): Promise<string> {
  const result = (await client.callTool({ name: 'get-env', arguments: {} })) as {
    content: Array<{ text: string }>;
  };
  return (JSON.parse(result.content[0].text) as { PORT: string }).PORT;
}

function portOf(url: string): string {
  return new URL(url).port;
}

describe('replica failover (dedicated mode, 3 Streamable HTTP replicas)', () => {
  let replicas: RunningEverything[] = [];
  let gw: RunningGateway;
  const algedonic: AlgedonicEvent[] = [];

  before(async () => {
    replicas = await Promise.all([0, 1, 2].map(() => startEverythingHttp('streamableHttp')));
    gw = await startGateway({
      upstream: { retryMinMs: 20, retryMaxMs: 100, maxRestarts: 1, connectTimeoutMs: 3000 },
      defaultService: 'everything',
      services: {
        everything: {
          breaker: { volumeThreshold: 3, errorThresholdPercentage: 25, resetTimeoutMs: 60_000 },
          replicas: replicas.map((r) => ({ transport: 'streamable-http' as const, url: r.url })),
        },
      },
    });
    gw.gateway.app.get(EventEmitter2).on(VsmChannel.Algedonic, (e: AlgedonicEvent) => algedonic.push(e));
  });

  after(async () => {
    await gw?.close();
    await Promise.all(replicas.map((r) => r.stop()));
  });

  async function connect(transport: ClientTransportName, onSampling?: () => Promise<void>) {
    const client = new Client(
      { name: 'failover-test', version: '1.0.0' },
      { capabilities: { sampling: {} } },
    );
    client.setRequestHandler(CreateMessageRequestSchema, async () => {
      await onSampling?.();
      return { role: 'assistant', content: { type: 'text', text: 'ok' }, model: 'test' };
    });
    // One tenant: the ring puts every session of a client id on the same replica.
    const url = endpointFor(gw.url, transport);
    url.searchParams.set('client_id', 'failover-tenant');
    const t =
      transport === 'ws'
        ? new WebSocketClientTransport(url)
        : transport === 'sse'
          ? new SSEClientTransport(url)
          : new StreamableHTTPClientTransport(url);
    await client.connect(t);
    return { client, transport: t };
  }

  test('killing the serving replica moves its sessions; the clients keep their session and see no reconnect', async () => {
    let releaseSampling!: () => void;
    const samplingHeld = new Promise<void>((r) => (releaseSampling = r));
    let samplingAsked!: () => void;
    const samplingSeen = new Promise<void>((r) => (samplingAsked = r));

    const sessions = await Promise.all(
      CLIENT_TRANSPORTS.map((t) =>
        connect(t, async () => {
          samplingAsked();
          await samplingHeld;
        }),
      ),
    );
    for (const { client } of sessions) await client.listTools(); // teaches the gateway the tools' hints
    const before = await Promise.all(sessions.map(({ client }) => servingPort(client)));
    // One client id, one failover order: all on one replica, the one to kill.
    const victimPort = before[0];
    assert.ok(
      before.every((p) => p === victimPort),
      `sessions served by ${before.join(', ')}`,
    );
    const victim = replicas.find((r) => portOf(r.url) === victimPort)!;
    const sessionIds = sessions.map(({ transport }) => (transport as { sessionId?: string }).sessionId);

    // In flight at the kill: a read-only long operation on each session, and on one session a
    // call that may have had effects (it waits for the client's sampling answer).
    const readOnly = sessions.map(({ client }) =>
      client.callTool(
        { name: 'trigger-long-running-operation', arguments: { duration: 2, steps: 2 } },
        undefined,
        { timeout: 30_000 },
      ),
    );
    const effectful = sessions[0].client
      .callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hi', maxTokens: 5 } }, undefined, {
        timeout: 30_000,
      })
      .then(
        () => assert.fail('a call that may have had effects must not succeed after its replica died'),
        (err: unknown) => err,
      );
    await samplingSeen;
    victim.child.kill('SIGKILL');
    releaseSampling();

    const results = await Promise.all(readOnly);
    for (const r of results) {
      const text = (r as { content: Array<{ text: string }> }).content[0].text;
      assert.match(text, /Long running operation completed/i);
    }
    const err = await effectful;
    assert.ok(err instanceof McpError, `got ${String(err)}`);
    assert.equal(err.code, ErrorCode.UpstreamUnavailable);
    assert.match(err.message, new RegExp(NOT_RETRIED_MESSAGE.slice(0, 30)));

    const after = await Promise.all(sessions.map(({ client }) => servingPort(client)));
    for (const p of after) assert.notEqual(p, victimPort, 'the session moved off the killed replica');
    assert.deepEqual(
      sessions.map(({ transport }) => (transport as { sessionId?: string }).sessionId),
      sessionIds,
      'same session ids',
    );
    for (const { client } of sessions) {
      const echo = (await client.callTool({ name: 'echo', arguments: { message: 'still here' } })) as {
        content: Array<{ text: string }>;
      };
      assert.match(echo.content[0].text, /still here/);
    }
    const victimId = gw.gateway.app
      .get(Router)
      .pick('everything', 'any')
      .find((r) => r.transport === 'streamable-http' && portOf(r.url) === victimPort)!.id;
    const pains = algedonic.filter((e) => e.type === 'pain' && e.source === victimId);
    assert.equal(pains.length, 1, 'exactly one pain event for the episode');

    // New sessions are not refused while the replica is down: they start on the next one, and
    // the dead replica's breaker opens after enough failed attempts, so later ones fail fast.
    const late = [];
    for (let i = 0; i < 4; i++) late.push(await connect('streamable'));
    for (const { client } of late) assert.notEqual(await servingPort(client), victimPort);
    assert.equal(gw.gateway.app.get(PoolManager).breakers.state(victimId!), 'open');
    assert.equal(algedonic.filter((e) => e.type === 'pain' && e.source === victimId).length, 1);
    await Promise.all([...sessions, ...late].map(({ client }) => client.close()));
  });

  test('a replica that comes back gets its sessions again by the ring once its breaker closes', async () => {
    const router = gw.gateway.app.get(Router);
    const pool = gw.gateway.app.get(PoolManager);
    const dead = replicas.find((r) => r.child.exitCode !== null || r.child.signalCode !== null)!;
    assert.ok(dead, 'the first test killed a replica');
    const deadPort = portOf(dead.url);
    const deadId = router
      .pick('everything', 'any')
      .find((r) => r.transport === 'streamable-http' && portOf(r.url) === deadPort)!.id;
    assert.equal(pool.breakers.state(deadId), 'open');
    const revived = await startEverythingHttp('streamableHttp', Number(deadPort));
    replicas[replicas.indexOf(dead)] = revived;
    // Operators (or S3) hand the breaker back to its statistics; the half-open probe would do the same.
    gw.gateway.app
      .get(EventEmitter2)
      .emit(VsmChannel.S3Control, { type: 'force_circuit_state', transport: deadId, state: 'auto' });
    const { client } = await connect('streamable');
    assert.equal(await servingPort(client), deadPort, "the tenant's primary replica serves it again");
    await client.close();
  });

  test('S3 force_circuit_state opens a live replica: its sessions move at their next request, new ones avoid it', async () => {
    const emitter = gw.gateway.app.get(EventEmitter2);
    const router = gw.gateway.app.get(Router);
    const pool = gw.gateway.app.get(PoolManager);
    const { client } = await connect('ws');
    const first = await servingPort(client);
    const forced = router
      .pick('everything', 'any')
      .find((r) => r.transport === 'streamable-http' && portOf(r.url) === first)!;
    emitter.emit(VsmChannel.S3Control, { type: 'force_circuit_state', transport: forced.id!, state: 'open' });
    assert.equal(pool.breakers.state(forced.id!), 'open');
    const moved = await servingPort(client);
    assert.notEqual(moved, first, 'the session left the forced-open replica at its next request');
    const { client: fresh } = await connect('sse');
    assert.notEqual(await servingPort(fresh), first, 'a new session avoids it');
    emitter.emit(VsmChannel.S3Control, { type: 'force_circuit_state', transport: forced.id!, state: 'auto' });
    assert.equal(pool.breakers.state(forced.id!), 'closed');
    await Promise.all([client.close(), fresh.close()]);
  });
});
