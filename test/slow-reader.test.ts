/**
 * Backpressure, outbound: a client that stops reading makes its session pause the
 * upstream (stop reading, not buffer); when it reads again everything arrives exactly once,
 * in order. A client that falls behind past the bound has its session closed with 4008.
 */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { SessionService } from '../src/session/session.module';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { waitUntil } from './helpers/wait';

const STREAM_SERVER = resolve(__dirname, 'fixtures/stream-server.js');
const services = {
  stream: { replicas: [{ transport: 'stdio' as const, command: process.execPath, args: [STREAM_SERVER] }] },
};

async function streamingClient(gw: RunningGateway) {
  const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/ws/stream`, 'mcp');
  const notifications: number[] = [];
  const answers = new Map<string | number, any>();
  let sessionId = '';
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.method === 'notifications/gateway/session') sessionId = m.params.sessionId;
    else if (m.method === 'notifications/progress') notifications.push(m.params.progress);
    else if (m.id !== undefined) answers.set(m.id, m);
  });
  const closed = new Promise<number>((ok) => ws.once('close', (code) => ok(code)));
  await new Promise<void>((ok, fail) => {
    ws.once('open', () => ok());
    ws.once('error', fail);
  });
  ws.send(
    JSON.stringify({
      jsonrpc: '2.0',
      id: 'init',
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'slow', version: '1' } },
    }),
  );
  await waitUntil(() => answers.has('init'), 15_000, 'the initialize answer');
  ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
  return {
    ws,
    notifications,
    answers,
    closed,
    get sessionId() {
      return sessionId;
    },
    /** Stops reading from the TCP socket: the kernel buffers fill, then the gateway's. */
    pauseReading: () => (ws as unknown as { _socket: Socket })._socket.pause(),
    resumeReading: () => (ws as unknown as { _socket: Socket })._socket.resume(),
    stream: (count: number, perTick: number) =>
      ws.send(
        JSON.stringify({
          jsonrpc: '2.0',
          id: 'stream',
          method: 'tools/call',
          params: {
            name: 'stream',
            arguments: { count, perTick, intervalMs: 1 },
            _meta: { progressToken: 'p' },
          },
        }),
      ),
  };
}

describe('slow reader', () => {
  let gw: RunningGateway | undefined;
  after(() => gw?.close());

  test('pauses the upstream instead of buffering, and loses nothing once it reads again', async () => {
    gw = await startGateway({
      services,
      channelHighWaterMarkBytes: 16 * 1024,
      session: { outboxMaxBytes: 64 * 1024 * 1024, outboxMaxMessages: 400_000 },
    });
    const metrics = gw.gateway.app.get(GatewayMetrics);
    const client = await streamingClient(gw);
    // Well past what loopback kernel buffers absorb (a few MB), so the gateway's own buffer must fill.
    const COUNT = 150_000;
    // Bounds while paused (messages are ~100 B): kernel socket and pipe buffers (a few MB) plus the
    // 16 KiB high-water mark plus what the child had already written.
    const MAX_HELD_PAUSED = 60_000;
    const MAX_GROWTH_PAUSED = 2_000;
    client.pauseReading();
    const heapBefore = process.memoryUsage().heapUsed;
    client.stream(COUNT, 2000);
    await waitUntil(() => metrics.upstreamPauses > 0, 60_000, 'the upstream to be paused');
    // While the client does not read, the gateway holds at most its high-water mark plus what was in
    // flight. Kernel socket buffers may still take some (a drain, a resume, a pause again): wait until
    // the upstream is paused and the outbox has stopped growing.
    const session = gw.gateway.app.get(SessionService).get(client.sessionId)!;
    let size = -1;
    let grewAt = 0;
    await waitUntil(
      () => {
        if (session.outbox.size !== size) [size, grewAt] = [session.outbox.size, Date.now()];
        return metrics.upstreamPauses > metrics.upstreamResumes && Date.now() - grewAt >= 200;
      },
      15_000,
      'the upstream to stay paused',
    );
    const held = session.outbox.size;
    // The measurement: the upstream writes 2,000 per ms-tick; had it not stopped, a second would add ~100,000.
    await new Promise((r) => setTimeout(r, 1000));
    console.log(`slow reader: ${held} then ${session.outbox.size} of ${COUNT} held while paused`);
    assert.ok(
      session.outbox.size - held <= MAX_GROWTH_PAUSED,
      `outbox grew from ${held} to ${session.outbox.size} in a second: the upstream did not stop`,
    );
    assert.ok(
      session.outbox.size <= MAX_HELD_PAUSED,
      `outbox holds ${session.outbox.size} of ${COUNT}: more than kernel buffers plus the high-water mark`,
    );
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(heapGrowth < 64 * 1024 * 1024, `heap grew ${Math.round(heapGrowth / 1024)} KB while paused`);

    client.resumeReading();
    await waitUntil(() => client.answers.has('stream'), 60_000, 'the stream to end');
    assert.ok(metrics.upstreamResumes > 0, 'the upstream was resumed when the client drained');
    assert.equal(client.notifications.length, COUNT);
    assert.ok(
      client.notifications.every((n, i) => n === i + 1),
      'every notification once, in order',
    );
    assert.equal(client.answers.get('stream').result.content[0].text, `streamed ${COUNT}`);
    client.ws.close(1000);
    await gw.close();
    gw = undefined;
  });

  test('a client that falls behind past the bound has its session closed with 4008', async () => {
    // A bound below the high-water mark: the first time the connection backs up it is already past
    // the bound (whatever the stdio pipe had in flight), so the outcome does not depend on timing.
    gw = await startGateway({
      services,
      channelHighWaterMarkBytes: 16 * 1024,
      session: { outboxMaxBytes: 4 * 1024 },
    });
    const metrics = gw.gateway.app.get(GatewayMetrics);
    const client = await streamingClient(gw);
    client.pauseReading();
    client.stream(300_000, 5000);
    await waitUntil(() => (metrics.errors.get('outbox_overflow') ?? 0) > 0, 60_000, 'an outbox overflow');
    client.resumeReading();
    assert.equal(await client.closed, 4008);
    assert.equal(gw.gateway.app.get(SessionService).get(client.sessionId), undefined, 'the session is gone');
  });
});
