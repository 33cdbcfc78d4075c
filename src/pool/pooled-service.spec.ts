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
import type {
  UpstreamConnection,
  UpstreamSink,
  UpstreamTransportKind,
} from '../upstream/upstream-connection';
import type { PooledPort } from './pooled-port';
import { backgroundFailures } from './background-failures';
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
  readonly replica = REPLICA;
  sink: UpstreamSink | undefined = undefined;
  readonly sent: JsonRpcMessage[] = [];
  /** Runs instead of recording a tools/call (a connection that throws, or answers at once). */
  onCall: ((message: JsonRpcRequest) => void) | undefined = undefined;

  constructor(readonly kind: UpstreamTransportKind = 'stdio') {}

  async start(): Promise<void> {}

  send(message: JsonRpcMessage): void {
    if (this.onCall && isRequest(message) && message.method === 'tools/call') return this.onCall(message);
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

function setup(settings: PoolSettings = SETTINGS, kind: UpstreamTransportKind = 'stdio') {
  const connections: FakeConnection[] = [];
  const service = new PooledService('svc', {
    failoverOrder: () => [REPLICA],
    createConnection: () => {
      const c = new FakeConnection(kind);
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

const EXCLUSIVE: PoolSettings = { ...SETTINGS, maxConcurrentPerConnection: 1 };

function sampling(id: JsonRpcId, text = 'x'): JsonRpcRequest {
  return {
    jsonrpc: '2.0',
    id,
    method: 'sampling/createMessage',
    params: { messages: [{ role: 'user', content: { type: 'text', text } }], maxTokens: 1 },
  };
}

function log(data: string): JsonRpcMessage {
  return { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data } };
}

/** What the upstream got back for its own request `id` (an answer, or the gateway's refusal). */
function answersTo(connection: FakeConnection, id: JsonRpcId): JsonRpcMessage[] {
  return connection.sent.filter((m) => (m as { id?: unknown }).id === id && !('method' in m));
}

describe('pooled isolation: server requests and attribution', () => {
  test('a server request reaches its client under an unguessable id; only that client’s answer is taken', async () => {
    const { service, connections, client } = setup();
    const a = client();
    const b = client();
    const upA = await carried(a.port, connections, toolCall('a'));
    await carried(b.port, connections, toolCall('b'));
    connections[0].emit(sampling('srv-1'), upA.id);
    connections[0].emit(sampling('srv-2'), upA.id);
    const [first, second] = a.sink.got as JsonRpcRequest[];
    for (const r of [first, second]) assert.match(String(r.id), /^gs-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-/);
    assert.notEqual(first.id, second.id);
    assert.deepEqual(b.sink.got, []);

    // b answers a's request (it learned or guessed the id): dropped, counted, a's request still waits.
    b.port.send({ jsonrpc: '2.0', id: first.id, result: { forged: true } }, undefined);
    assert.deepEqual(answersTo(connections[0], 'srv-1'), [], 'the forged answer did not reach the upstream');
    assert.equal(service.refusedAnswers.wrong_session, 1);
    a.port.send({ jsonrpc: '2.0', id: first.id, result: { real: true } }, undefined);
    assert.deepEqual(answersTo(connections[0], 'srv-1'), [
      { jsonrpc: '2.0', id: 'srv-1', result: { real: true } },
    ]);
    // Answered once: a second answer (from anyone) is an unknown id.
    a.port.send({ jsonrpc: '2.0', id: first.id, result: { again: true } }, undefined);
    b.port.send({ jsonrpc: '2.0', id: 'gs-1', result: {} }, undefined);
    assert.equal(answersTo(connections[0], 'srv-1').length, 1);
    assert.equal(service.refusedAnswers.unknown_id, 2);

    // a leaves with srv-2 unanswered: the upstream gets an error answer instead of waiting forever.
    a.port.close();
    const [abandoned] = answersTo(connections[0], 'srv-2') as Array<{
      error: { code: number; message: string };
    }>;
    assert.equal(abandoned.error.code, ErrorCode.InternalError);
    assert.match(abandoned.error.message, /closed/);
    await service.stop();
  });

  test('a log line that names no request reaches nobody, though one request is carried; on its stream it reaches its client', async () => {
    const { service, connections, client } = setup();
    const a = client();
    const b = client();
    const upB = await carried(b.port, connections, toolCall('b'));
    connections[0].emit(log('periodic line of a'));
    assert.deepEqual(b.sink.got, [], 'b holds the session but the line is not its');
    assert.deepEqual(a.sink.got, []);
    assert.equal(service.unattributedMessages.get('notifications/message'), 1);
    connections[0].emit(log('b’s own line'), upB.id);
    assert.deepEqual(b.sink.got, [log('b’s own line')]);
    // A server request with one request carried but shared (mcpc 2) is refused, not guessed.
    connections[0].emit(sampling('srv-9'));
    assert.equal(b.sink.got.length, 1);
    assert.equal(
      (answersTo(connections[0], 'srv-9')[0] as { error: { code: number } }).error.code,
      ErrorCode.InvalidRequest,
    );
    assert.equal(service.unattributedMessages.get('sampling/createMessage'), 1);
    await service.stop();
  });

  test('an upstream cancellation reaches the asked client under the id it saw; an unknown one reaches nobody', async () => {
    const { service, connections, client } = setup();
    const a = client();
    const b = client();
    const upA = await carried(a.port, connections, toolCall('a'));
    await carried(b.port, connections, toolCall('b'));
    connections[0].emit(sampling('srv-1'), upA.id);
    const asked = a.sink.got[0] as JsonRpcRequest;
    connections[0].emit({
      jsonrpc: '2.0',
      method: Method.Cancelled,
      params: { requestId: 'srv-1', reason: 'timeout' },
    });
    assert.deepEqual(a.sink.got[1], {
      jsonrpc: '2.0',
      method: Method.Cancelled,
      params: { requestId: asked.id, reason: 'timeout' },
    });
    connections[0].emit({ jsonrpc: '2.0', method: Method.Cancelled, params: { requestId: 'srv-1' } });
    connections[0].emit({ jsonrpc: '2.0', method: Method.Cancelled, params: { requestId: upA.id } });
    assert.equal(a.sink.got.length, 2, 'withdrawn once; nothing for unknown ids');
    assert.deepEqual(b.sink.got, []);
    assert.equal(service.unattributedMessages.get('notifications/cancelled'), 2);
    // Withdrawn: a late answer from a is not sent upstream.
    a.port.send({ jsonrpc: '2.0', id: asked.id, result: {} }, undefined);
    assert.deepEqual(answersTo(connections[0], 'srv-1'), []);
    await service.stop();
  });

  test('exclusive checkout over stdio: a server request goes to the holder, a log line to nobody; after a cancellation the session is replaced', async () => {
    const { service, connections, client } = setup(EXCLUSIVE);
    const a = client();
    const b = client();
    await carried(a.port, connections, toolCall('a'));
    connections[0].emit(sampling('srv-1'));
    connections[0].emit(log('line'));
    assert.deepEqual(
      a.sink.got.map((m) => (m as JsonRpcRequest).method),
      ['sampling/createMessage'],
      'the holder gets the server request, not the log line',
    );
    a.port.send({ jsonrpc: '2.0', method: Method.Cancelled, params: { requestId: 'a' } }, undefined);
    // Whatever a's handler still raises must not land on the next holder: the session is retired.
    b.port.send(toolCall('b'), undefined);
    await waitUntil(
      () => connections.length === 2 && connections[1].calls().length === 1,
      WAIT_MS,
      'b on a new session',
      EVERY_TURN,
    );
    assert.equal(connections[0].sink, undefined, 'the retired session was closed, not lent again');
    assert.equal(service.stats()[0].size, 1, 'and left the pool');
    connections[1].emit(sampling('srv-b'));
    assert.equal((b.sink.got[0] as JsonRpcRequest).method, 'sampling/createMessage');
    await service.stop();
  });

  test('over a transport that names requests, exclusivity attributes nothing: only the stream does', async () => {
    const { service, connections, client } = setup(EXCLUSIVE, 'streamable-http');
    const a = client();
    const upA = await carried(a.port, connections, toolCall('a'));
    connections[0].emit(sampling('srv-standalone'));
    assert.deepEqual(a.sink.got, []);
    assert.equal(answersTo(connections[0], 'srv-standalone').length, 1, 'refused');
    connections[0].emit(sampling('srv-stream'), upA.id);
    assert.equal(a.sink.got.length, 1);
    await service.stop();
  });

  test('the upstream’s ping is answered by the gateway; a dead upstream session withdraws its server requests', async () => {
    const { service, connections, client } = setup();
    const a = client();
    const upA = await carried(a.port, connections, toolCall('a'));
    connections[0].emit({ jsonrpc: '2.0', id: 'p1', method: Method.Ping });
    assert.deepEqual(answersTo(connections[0], 'p1'), [{ jsonrpc: '2.0', id: 'p1', result: {} }]);
    assert.deepEqual(a.sink.got, []);
    connections[0].emit(sampling('srv-1'), upA.id);
    const asked = a.sink.got[0] as JsonRpcRequest;
    connections[0].sink!.upstreamClosed(new Error('gone'));
    const cancelled = a.sink.got.find((m) => (m as JsonRpcRequest).method === Method.Cancelled);
    assert.equal((cancelled as unknown as { params: { requestId: unknown } }).params.requestId, asked.id);
    await service.stop();
  });
});

describe('pooled carry: a request the connection cannot take leaves nothing behind', () => {
  test('a connection that answers while the request is written (a refusal): the port keeps no entry', async () => {
    const { service, connections, client } = setup();
    const a = client();
    a.port.send(toolCall('warm'), undefined); // creates the connection
    await waitUntil(
      () => connections.length === 1 && connections[0].calls().length === 1,
      WAIT_MS,
      'the first call',
      EVERY_TURN,
    );
    connections[0].onCall = (m) =>
      connections[0].emit(
        {
          jsonrpc: '2.0',
          id: m.id,
          error: { code: ErrorCode.UpstreamUnavailable, message: 'not connected' },
        },
        m.id,
      );
    a.port.send(toolCall('refused'), undefined);
    await waitUntil(() => a.sink.got.length === 1, WAIT_MS, 'the refusal', EVERY_TURN);
    assert.equal((a.sink.got[0] as { id: unknown }).id, 'refused');
    assert.equal(a.port.outstandingCount, 1, 'only the first call is outstanding');
    await service.stop();
  });

  test('a connection whose send throws: the client gets an error answer and the session goes back', async () => {
    const { service, connections, client } = setup(EXCLUSIVE);
    const a = client();
    a.port.send(toolCall('warm'), undefined);
    await waitUntil(
      () => connections.length === 1 && connections[0].calls().length === 1,
      WAIT_MS,
      'the first call',
      EVERY_TURN,
    );
    connections[0].emit({ jsonrpc: '2.0', id: connections[0].calls()[0].id, result: {} });
    connections[0].onCall = () => {
      throw new Error('write after end');
    };
    a.port.send(toolCall('thrown'), undefined);
    await waitUntil(() => a.sink.got.length === 2, WAIT_MS, 'an answer to the failed call', EVERY_TURN);
    const answer = a.sink.got[1] as { id: unknown; error: { code: number; message: string } };
    assert.equal(answer.id, 'thrown');
    assert.equal(answer.error.code, ErrorCode.UpstreamUnavailable);
    assert.match(answer.error.message, /write after end/);
    assert.equal(a.port.outstandingCount, 0);
    assert.equal(service.stats()[0].borrowed, 0, 'the checkout went back');
    await service.stop();
  });
});

describe('pooled fire-and-forget chains', () => {
  test('a failure inside one is logged and counted, never left as an unhandled rejection', async () => {
    const failing: PoolSettings = { ...SETTINGS, acquireTimeoutMs: 50 };
    const service = new PooledService('svc', {
      failoverOrder: () => [REPLICA],
      createConnection: () => {
        const c = new FakeConnection();
        // Fails after a moment, as a spawn does (generic-pool retries a failed create at once).
        c.start = () => new Promise((_, reject) => setTimeout(() => reject(new Error('cannot spawn')), 5));
        return c;
      },
      record: () => undefined,
      settings: failing,
      handshakeTimeoutMs: 1000,
    });
    const port = service.open('key');
    // A session whose delivery throws (a bug below the port): the refusal cannot be delivered.
    port.sink = {
      upstreamMessage: () => {
        throw new Error('delivery broke');
      },
      upstreamClosed: () => undefined,
    };
    const count = (task: string) => backgroundFailures.get(task) ?? 0;
    const before = { carry: count('pooled-service.carry'), init: count('pooled-port.initialize') };
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      port.send(toolCall('refused'), undefined);
      port.send(
        { jsonrpc: '2.0', id: 0, method: Method.Initialize, params: { protocolVersion: '2025-11-25' } },
        undefined,
      );
      await waitUntil(
        () => count('pooled-service.carry') > before.carry && count('pooled-port.initialize') > before.init,
        WAIT_MS,
        'both failures to be counted',
        EVERY_TURN,
      );
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await service.stop();
    }
  });
});
