/**
 * Which send failures an upstream connection reports as "never reached the upstream"
 * (UpstreamSink.upstreamNotSent: the request may go to another replica whatever it is) and which
 * as an ordinary −31001 (it may have had effects).
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, describe, test } from 'node:test';
import { Logger } from '@nestjs/common';
import type { JsonRpcId, JsonRpcRequest } from '../../libs/protocol/src';
import type { ReplicaConfig } from '../config/gateway-config';
import { FAST_OPTIONS, freePort, RecordingSink, waitUntil } from './testing/upstream-kit';
import { neverConnected } from './http-client';
import { StdioUpstream } from './stdio.upstream';
import { StreamableHttpUpstream } from './streamable-http.upstream';
import type { UpstreamConnection } from './upstream-connection';
import { WsUpstream } from './ws.upstream';

Logger.overrideLogger(['error']);

/** A RecordingSink that also hears of requests that never reached the upstream. */
class NotSentSink extends RecordingSink {
  readonly notSent: Array<{ id: JsonRpcId; why: string }> = [];
  upstreamNotSent(id: JsonRpcId, why: string): void {
    this.notSent.push({ id, why });
  }
}

function request(id: JsonRpcId): JsonRpcRequest {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'x', arguments: {} } };
}

const opened: UpstreamConnection[] = [];
after(async () => {
  await Promise.all(opened.map((u) => u.close()));
});

describe('neverConnected()', () => {
  test('connect-phase codes, also as a cause, are never-reached; a reset is not', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    assert.equal(neverConnected(refused), true);
    assert.equal(neverConnected(new TypeError('fetch failed', { cause: refused })), true);
    assert.equal(neverConnected(Object.assign(new Error('dns'), { code: 'ENOTFOUND' })), true);
    assert.equal(
      neverConnected(Object.assign(new Error('tls'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' })),
      true,
    );
    assert.equal(neverConnected(Object.assign(new Error('t'), { code: 'UND_ERR_CONNECT_TIMEOUT' })), true);
    assert.equal(neverConnected(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), false);
    assert.equal(neverConnected(Object.assign(new Error('closed'), { code: 'UND_ERR_SOCKET' })), false);
    assert.equal(neverConnected(new Error('no code')), false);
  });
});

describe('send failures that never reached the upstream', () => {
  test('Streamable HTTP: a POST whose connection is refused', async () => {
    // An upstream that answers the reachability check (HEAD), then goes away.
    const server = createServer((_req, res) => res.writeHead(200).end());
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    const replica: ReplicaConfig = {
      transport: 'streamable-http',
      url: `http://127.0.0.1:${port}/mcp`,
      headers: {},
      weight: 1,
      id: 'nr-http',
    };
    const up = new StreamableHttpUpstream(replica, FAST_OPTIONS);
    const sink = new NotSentSink();
    up.sink = sink;
    opened.push(up);
    await up.start();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    up.send(request('r1'), undefined);
    await waitUntil(() => sink.notSent.length === 1, 5000, 'the refused POST to be reported');
    assert.equal(sink.notSent[0].id, 'r1');
    assert.match(sink.notSent[0].why, /ECONNREFUSED/);
    assert.equal(sink.received.length, 0, 'no −31001 answer as well');
  });

  test('WebSocket: a connection whose first connect fails answers what it held', async () => {
    const port = await freePort();
    const up = new WsUpstream(
      {
        transport: 'ws',
        url: `ws://127.0.0.1:${port}/mcp`,
        headers: {},
        weight: 1,
        id: 'nr-ws',
      } as ReplicaConfig,
      FAST_OPTIONS,
    );
    const sink = new NotSentSink();
    up.sink = sink;
    opened.push(up);
    const starting = up.start().catch((err: Error) => err);
    up.send(request('w1'), undefined);
    assert.ok((await starting) instanceof Error);
    assert.deepEqual(
      sink.notSent.map((n) => n.id),
      ['w1'],
    );
    up.send(request('w2'), undefined); // closed by now? either way never written
    await up.close();
    up.send(request('w3'), undefined);
    assert.ok(sink.notSent.some((n) => n.id === 'w3'));
    assert.equal(sink.received.length, 0);
  });

  test('stdio: a process that could not be spawned, and a closed connection', async () => {
    const up = new StdioUpstream(
      {
        transport: 'stdio',
        command: '/nonexistent/mcp-server',
        args: [],
        env: {},
        weight: 1,
        id: 'nr-stdio',
      } as ReplicaConfig,
      { ...FAST_OPTIONS, maxRestarts: 0 },
    );
    const sink = new NotSentSink();
    up.sink = sink;
    opened.push(up);
    await assert.rejects(up.start(), /cannot start/);
    await up.close();
    up.send(request('s2'), undefined);
    assert.ok(sink.notSent.some((n) => n.id === 's2'));
    assert.equal(sink.received.length, 0, 'no −31001 answer for what never reached it');
  });
});
