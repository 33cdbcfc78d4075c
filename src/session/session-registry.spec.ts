import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { JsonRpcMessage } from '../../libs/protocol/src';
import type { ReplicaConfig } from '../config/gateway-config';
import type { UpstreamConnection, UpstreamSink } from '../upstream/upstream-connection';
import type { ChannelListener, ClientChannel } from './client-channel';
import type { ClientTransport } from '../core/transport-kind';
import { ResumeUnavailableError } from './outbox';
import type { Session } from './session';
import { SessionRegistry, type OutboxDropReason, type SessionRegistryOptions } from './session-registry';
import { InMemorySessionStore } from './session-store';

class FakeUpstream implements UpstreamConnection {
  readonly kind = 'embedded' as const;
  readonly replica = { transport: 'embedded', server: 'demo', weight: 1 } as ReplicaConfig;
  sink: UpstreamSink | undefined;
  released = false;
  async start(): Promise<void> {}
  send(_message: JsonRpcMessage): void {}
  pause(): void {}
  resume(): void {}
  healthy(): boolean {
    return true;
  }
  async close(): Promise<void> {
    this.released = true;
  }
}

class FakeChannel implements ClientChannel {
  listener: ChannelListener | undefined;
  closed = false;
  bufferedBytes = 0;
  constructor(readonly kind: ClientTransport) {}
  send(): boolean {
    return true;
  }
  end(): void {
    this.closed = true;
  }
  close(): void {
    this.closed = true;
  }
  /** The peer went away (what the transports report). */
  drop(): void {
    this.closed = true;
    this.listener?.channelClosed(this);
  }
}

const OPTIONS: SessionRegistryOptions = {
  idleTimeoutMs: 600_000,
  detachedTimeoutMs: 1000,
  sweepIntervalMs: 100,
  outboxMaxMessages: 100,
  outboxMaxBytes: 1e6,
  outboxResumeWindowMs: 30_000,
  outboxGlobalMaxBytes: 1e9,
  maxInFlight: 10,
  dedupeWindow: 100,
  dedupeWindowMs: 60_000,
  requestTimeoutMs: 0,
};

function newRegistry(options: Partial<SessionRegistryOptions> = {}) {
  const upstreams: FakeUpstream[] = [];
  const registry = new SessionRegistry(
    new InMemorySessionStore(),
    { ...OPTIONS, ...options },
    async () => {
      const connection = new FakeUpstream();
      upstreams.push(connection);
      // The fake stands for the session's upstream port: closing it is the release.
      return connection;
    },
    { clientMessage() {}, upstreamMessage() {}, sessionClosed() {}, overflow() {}, backpressure() {} },
  );
  const drops: Array<{ reason: OutboxDropReason; entries: number; bytes: number }> = [];
  registry.onOutboxDrop = (reason, entries, bytes) => drops.push({ reason, entries, bytes });
  return { registry, upstreams, drops };
}

async function connected(registry: SessionRegistry, kind: ClientTransport): Promise<[Session, FakeChannel]> {
  const session = registry.create('c1', 'demo', kind);
  await new Promise((r) => setImmediate(r)); // the upstream lease is handed over
  const channel = new FakeChannel(kind);
  if (kind === 'streamable') session.attachStandalone(channel);
  else session.attachPrimary(channel, undefined);
  return [session, channel];
}

function say(session: Session, text: string): void {
  session.upstreamMessage({ jsonrpc: '2.0', method: 'n', params: { text } }, undefined, undefined);
}

describe('SessionRegistry sweep', () => {
  test('defect 12: a WebSocket or SSE session whose client went away ends after the detached timeout', async () => {
    const { registry, upstreams } = newRegistry();
    const [ws, wsChannel] = await connected(registry, 'ws');
    const [sse, sseChannel] = await connected(registry, 'sse');
    const [http, httpChannel] = await connected(registry, 'streamable');
    const [live] = await connected(registry, 'ws');
    wsChannel.drop();
    sseChannel.drop();
    httpChannel.drop();
    const t = Date.now();
    assert.equal(registry.sweep(t + 500), 0, 'inside the resume window every session stays');
    assert.equal(registry.sweep(t + 1000), 2, 'the two whose connection went away end');
    assert.equal(ws.closed && sse.closed, true);
    assert.equal(upstreams.filter((u) => u.released).length, 2, 'and their upstreams are released');
    assert.equal(http.closed, false, 'a Streamable HTTP session without a GET stream is normal');
    assert.equal(live.closed, false, 'a connected one is not touched');
    assert.equal(registry.sweep(t + 600_000), 1, 'the Streamable HTTP one ends at the idle timeout');
    assert.equal(http.closed, true);
    assert.equal(registry.size, 1);
  });

  test('defect 12: a client that reconnects within the window keeps its session', async () => {
    const { registry } = newRegistry();
    const [session, channel] = await connected(registry, 'ws');
    channel.drop();
    say(session, 'while away');
    const back = new FakeChannel('ws');
    session.attachPrimary(back, 0);
    assert.equal(registry.sweep(Date.now() + 5000), 0);
    assert.equal(session.closed, false);
  });

  test('defect 10: the sweep drops what was delivered longer ago than the resume window, and counts it', async () => {
    const { registry, drops } = newRegistry({ outboxResumeWindowMs: 1000 });
    const [session] = await connected(registry, 'ws');
    for (let i = 0; i < 4; i++) say(session, `m${i}`);
    assert.equal(session.outbox.size, 4);
    registry.sweep(Date.now() + 1000);
    assert.equal(session.outbox.size, 0, 'an idle connected session holds no outbox entries');
    assert.equal(registry.outboxBudget.bytes, 0);
    assert.deepEqual(
      drops.map((d) => [d.reason, d.entries]),
      [['resume_window', 4]],
    );
    assert.ok(drops[0].bytes > 0);
  });

  test('defect 10: past the global budget the longest-idle sessions lose their delivered entries first', async () => {
    const { registry, drops } = newRegistry({ outboxGlobalMaxBytes: 2000 });
    const [oldest] = await connected(registry, 'ws');
    const [newest] = await connected(registry, 'sse');
    const [detached, detachedChannel] = await connected(registry, 'ws');
    detachedChannel.drop();
    const pad = 'x'.repeat(150);
    for (let i = 0; i < 4; i++) say(detached, pad); // undelivered: never dropped for the budget
    oldest.lastActivity -= 10_000;
    for (let i = 0; i < 4; i++) say(oldest, pad);
    for (let i = 0; i < 4; i++) say(newest, pad);
    assert.ok(registry.outboxBudget.bytes <= 2000, `within the budget: ${registry.outboxBudget.bytes}`);
    assert.equal(detached.outbox.size, 4, 'undelivered messages are kept');
    assert.ok(oldest.outbox.size < newest.outbox.size, 'the longest idle session paid first');
    assert.ok(drops.some((d) => d.reason === 'global_budget' && d.entries > 0));
    assert.throws(() => oldest.attachPrimary(new FakeChannel('ws'), 0), ResumeUnavailableError);
  });
});
