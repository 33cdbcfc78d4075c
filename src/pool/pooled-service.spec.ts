/**
 * Pooled mode below the session, with a fake upstream connection so that the cases a real
 * server cannot produce on demand are exact: two client requests carried at once by one
 * upstream session, a server request that names no request, an answer arriving after its
 * client left.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ErrorCode,
  isRequest,
  Method,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcRequest,
} from '../../libs/protocol/src';
import { waitUntil } from '../testing/wait';
import type { ReplicaConfig } from '../config/gateway-config';
import type { UpstreamConnection, UpstreamSink } from '../upstream/upstream-connection';
import type { PooledPort } from './pooled-port';
import { PooledService } from './pooled-service';
import type { PoolSettings } from './replica-pool';

const REPLICA: ReplicaConfig = {
  id: 'fake-1',
  transport: 'stdio',
  command: 'fake',
  args: [],
  env: {},
  weight: 1,
};

/** An upstream that answers initialize and ping by itself and records everything else it is sent. */
class FakeConnection implements UpstreamConnection {
  readonly kind = 'stdio' as const;
  readonly replica = REPLICA;
  sink: UpstreamSink | undefined = undefined;
  readonly sent: JsonRpcMessage[] = [];

  async start(): Promise<void> {}

  send(message: JsonRpcMessage): void {
    if (isRequest(message) && (message.method === Method.Initialize || message.method === Method.Ping)) {
      const result =
        message.method === Method.Ping
          ? {}
          : {
              protocolVersion: '2025-11-25',
              capabilities: { tools: {} },
              serverInfo: { name: 'fake', version: '1' },
            };
      queueMicrotask(() =>
        this.sink?.upstreamMessage({ jsonrpc: '2.0', id: message.id, result }, undefined, undefined),
      );
      return;
    }
    this.sent.push(message);
  }

  /** A message from the upstream; `related` as a transport would name it (undefined: it cannot tell). */
  emit(message: JsonRpcMessage, related?: JsonRpcId): void {
    this.sink!.upstreamMessage(message, undefined, related);
  }

  pause(): void {}
  resume(): void {}
  healthy(): boolean {
    return true;
  }
  async close(): Promise<void> {}

  /** Client requests (tools/call) the upstream has received, in order. */
  calls(): JsonRpcRequest[] {
    return this.sent.filter((m): m is JsonRpcRequest => isRequest(m) && m.method === 'tools/call');
  }
}

class Sink implements UpstreamSink {
  readonly got: JsonRpcMessage[] = [];
  upstreamMessage(message: JsonRpcMessage): void {
    this.got.push(message);
  }
  upstreamClosed(): void {}
}

const SETTINGS: PoolSettings = {
  min: 0,
  max: 1,
  maxWaitingClients: 10,
  acquireTimeoutMs: 2000,
  idleTimeoutMs: 60_000,
  evictionRunIntervalMs: 0,
  testOnBorrow: false,
  maxConcurrentPerConnection: 2,
};

function setup(settings: PoolSettings = SETTINGS) {
  const connections: FakeConnection[] = [];
  const service = new PooledService('svc', {
    failoverOrder: () => [REPLICA],
    createConnection: () => {
      const c = new FakeConnection();
      connections.push(c);
      return c;
    },
    record: () => undefined,
    settings,
    handshakeTimeoutMs: 1000,
  });
  const client = () => {
    const port = service.open('key');
    const sink = new Sink();
    port.sink = sink;
    return { port, sink };
  };
  return { service, connections, client };
}

/** The fakes answer within a turn of the event loop: poll every turn, give up after 2 s. */
const WAIT_MS = 2000;
const EVERY_TURN = 0;

let calls = 0;
/** A tools/call whose argument is unique, so the test finds it upstream whatever its id. */
function toolCall(id: JsonRpcId, meta?: Record<string, unknown>): JsonRpcRequest {
  calls++;
  const params: Record<string, unknown> = { name: 'echo', arguments: { message: `call-${calls}` } };
  if (meta) params._meta = meta;
  return { jsonrpc: '2.0', id, method: 'tools/call', params };
}

/** Sends a call through the port and returns it as the upstream received it. */
async function carried(
  port: PooledPort,
  connections: FakeConnection[],
  request: JsonRpcRequest,
): Promise<JsonRpcRequest> {
  port.send(request, undefined);
  const marker = (request.params as { arguments: { message: string } }).arguments.message;
  let found: JsonRpcRequest | undefined;
  await waitUntil(
    () =>
      (found = connections
        .flatMap((c) => c.calls())
        .find((m) => (m.params as { arguments: { message: string } }).arguments.message === marker)) !==
      undefined,
    WAIT_MS,
    `the upstream to receive call ${marker}`,
    EVERY_TURN,
  );
  return found!;
}

describe('pooled service with a fake upstream connection', () => {
  test('ids are restored exactly: a number stays a number, a string a string, each to its own client', async () => {
    const { service, connections, client } = setup();
    const a = client();
    const b = client();
    const upA = await carried(a.port, connections, toolCall(7));
    const upB = await carried(b.port, connections, toolCall('7'));
    assert.equal(connections.length, 1, 'one upstream session carries both (max 1, 2 per connection)');
    assert.equal(typeof upA.id, 'string');
    assert.notEqual(upA.id, upB.id, 'the upstream sees distinct gateway ids');
    // Answered out of order.
    connections[0].emit({ jsonrpc: '2.0', id: upB.id, result: { who: 'b' } });
    connections[0].emit({ jsonrpc: '2.0', id: upA.id, result: { who: 'a' } });
    assert.deepEqual(a.sink.got, [{ jsonrpc: '2.0', id: 7, result: { who: 'a' } }]);
    assert.deepEqual(b.sink.got, [{ jsonrpc: '2.0', id: '7', result: { who: 'b' } }]);
    await service.stop();
  });

  test('progress tokens are remapped upstream and restored for the client that asked', async () => {
    const { service, connections, client } = setup();
    const a = client();
    const b = client();
    const upA = await carried(a.port, connections, toolCall(1, { progressToken: 42 }));
    const upB = await carried(b.port, connections, toolCall(1, { progressToken: 42 }));
    const tokenA = (upA.params as { _meta: { progressToken: unknown } })._meta.progressToken;
    const tokenB = (upB.params as { _meta: { progressToken: unknown } })._meta.progressToken;
    assert.equal(typeof tokenA, 'string');
    assert.notEqual(tokenA, tokenB, 'the same client token on two sessions is two upstream tokens');
    assert.notEqual(tokenA, 42);
    connections[0].emit({
      jsonrpc: '2.0',
      method: Method.Progress,
      params: { progressToken: tokenB, progress: 1, total: 2 },
    });
    assert.deepEqual(a.sink.got, [], 'no progress for the other client');
    assert.deepEqual(b.sink.got, [
      { jsonrpc: '2.0', method: Method.Progress, params: { progressToken: 42, progress: 1, total: 2 } },
    ]);
    // Once answered, the token is forgotten: a late progress notification reaches nobody.
    connections[0].emit({ jsonrpc: '2.0', id: upB.id, result: {} });
    connections[0].emit({
      jsonrpc: '2.0',
      method: Method.Progress,
      params: { progressToken: tokenB, progress: 2 },
    });
    assert.equal(b.sink.got.length, 2, 'the answer, and no late progress');
    await service.stop();
  });

  test('a server request with two requests carried and no related id gets a JSON-RPC error and reaches no client', async () => {
    const { service, connections, client } = setup();
    const a = client();
    const b = client();
    const upA = await carried(a.port, connections, toolCall('a'));
    await carried(b.port, connections, toolCall('b'));
    const sampling: JsonRpcRequest = {
      jsonrpc: '2.0',
      id: 'srv-1',
      method: 'sampling/createMessage',
      params: { messages: [], maxTokens: 1 },
    };
    connections[0].emit(sampling);
    const refusal = connections[0].sent.find((m) => (m as { id?: unknown }).id === 'srv-1' && 'error' in m);
    assert.ok(refusal, 'the upstream got an answer to its request');
    assert.equal((refusal as { error: { code: number } }).error.code, ErrorCode.InvalidRequest);
    assert.deepEqual(a.sink.got, [], 'no guess');
    assert.deepEqual(b.sink.got, []);

    // Named by the transport (its request's stream): it goes to that client, and the answer back upstream.
    connections[0].emit({ ...sampling, id: 'srv-2' }, upA.id);
    assert.equal(a.sink.got.length, 1);
    const relayed = a.sink.got[0] as JsonRpcRequest;
    assert.equal(relayed.method, 'sampling/createMessage');
    assert.notEqual(relayed.id, 'srv-2', 'the client sees a gateway id');
    assert.deepEqual(b.sink.got, []);
    a.port.send({ jsonrpc: '2.0', id: relayed.id, result: { role: 'assistant' } }, undefined);
    const answered = connections[0].sent.find((m) => (m as { id?: unknown }).id === 'srv-2');
    assert.deepEqual(answered, { jsonrpc: '2.0', id: 'srv-2', result: { role: 'assistant' } });
    await service.stop();
  });

  test('a cancellation reaches the upstream with the id it knows; the late answer is dropped', async () => {
    const { service, connections, client } = setup();
    const a = client();
    const up = await carried(a.port, connections, toolCall(5));
    a.port.send(
      { jsonrpc: '2.0', method: Method.Cancelled, params: { requestId: 5, reason: 'user' } },
      undefined,
    );
    const cancel = connections[0].sent.find((m) => (m as JsonRpcRequest).method === Method.Cancelled);
    assert.deepEqual(cancel, {
      jsonrpc: '2.0',
      method: Method.Cancelled,
      params: { requestId: up.id, reason: 'user' },
    });
    connections[0].emit({ jsonrpc: '2.0', id: up.id, result: {} });
    assert.deepEqual(a.sink.got, [], 'a cancelled request is not answered');
    assert.equal(service.stats()[0].borrowed, 0, 'the upstream session went back to the pool');
    await service.stop();
  });

  test('an answer arriving after the client port closed is dropped and the upstream is told', async () => {
    const { service, connections, client } = setup();
    const a = client();
    const b = client();
    const upA = await carried(a.port, connections, toolCall('gone'));
    const upB = await carried(b.port, connections, toolCall('stays'));
    a.port.close();
    const cancel = connections[0].sent.find((m) => (m as JsonRpcRequest).method === Method.Cancelled);
    assert.deepEqual((cancel as JsonRpcRequest).params, {
      requestId: upA.id,
      reason: 'client session closed',
    });
    connections[0].emit({ jsonrpc: '2.0', id: upA.id, result: { late: true } });
    connections[0].emit({ jsonrpc: '2.0', id: upB.id, result: { ok: true } });
    assert.deepEqual(a.sink.got, [], 'nothing for the closed port');
    assert.deepEqual(
      b.sink.got,
      [{ jsonrpc: '2.0', id: 'stays', result: { ok: true } }],
      'and nothing extra for b',
    );
    assert.equal(service.clientCount, 1);
    await service.stop();
  });

  test('a request still queued for a checkout when its port closes never reaches the upstream', async () => {
    const { service, connections, client } = setup({ ...SETTINGS, maxConcurrentPerConnection: 1 });
    const a = client();
    const b = client();
    const upA = await carried(a.port, connections, toolCall(1));
    b.port.send(toolCall(2), undefined);
    await waitUntil(
      () => service.stats()[0].pending === 1,
      WAIT_MS,
      'the second request to queue',
      EVERY_TURN,
    );
    b.port.close();
    connections[0].emit({ jsonrpc: '2.0', id: upA.id, result: {} });
    await waitUntil(() => service.stats()[0].pending === 0, WAIT_MS, 'the queue to empty', EVERY_TURN);
    await new Promise((r) => setImmediate(r));
    assert.equal(connections[0].calls().length, 1, 'only the first request was sent upstream');
    assert.deepEqual(b.sink.got, []);
    assert.equal(service.stats()[0].borrowed, 0, 'the checkout went straight back');
    await service.stop();
  });

  test('a request cancelled while it waits for a checkout never reaches the upstream', async () => {
    const { service, connections, client } = setup({ ...SETTINGS, maxConcurrentPerConnection: 1 });
    const a = client();
    const upA = await carried(a.port, connections, toolCall(1));
    a.port.send(toolCall(2), undefined);
    await waitUntil(
      () => service.stats()[0].pending === 1,
      WAIT_MS,
      'the second request to queue',
      EVERY_TURN,
    );
    a.port.send({ jsonrpc: '2.0', method: Method.Cancelled, params: { requestId: 2 } }, undefined);
    connections[0].emit({ jsonrpc: '2.0', id: upA.id, result: {} });
    await waitUntil(() => service.stats()[0].pending === 0, WAIT_MS, 'the queue to empty', EVERY_TURN);
    await new Promise((r) => setImmediate(r));
    assert.equal(connections[0].calls().length, 1, 'the cancelled request was not sent');
    assert.equal(
      connections[0].sent.filter((m) => (m as JsonRpcRequest).method === Method.Cancelled).length,
      0,
      'nothing to cancel upstream',
    );
    assert.deepEqual(a.sink.got, [{ jsonrpc: '2.0', id: 1, result: {} }]);
    assert.equal(service.stats()[0].borrowed, 0);
    await service.stop();
  });
});
