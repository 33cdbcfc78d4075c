import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode, type JsonRpcMessage } from '../../libs/protocol/src';
import type { ReplicaConfig } from '../config/gateway-config';
import type { UpstreamConnection, UpstreamSink } from '../upstream/upstream-connection';
import type { ChannelListener, ClientChannel } from './client-channel';
import type { ClientTransport } from '../core/transport-kind';
import { ResumeUnavailableError } from './outbox';
import { ANONYMOUS_CLIENT } from '../core/client-id';
import { Session, STANDALONE_STREAM, type SessionHooks } from './session';

class FakeUpstream implements UpstreamConnection {
  readonly kind = 'embedded' as const;
  readonly replica = { transport: 'embedded', server: 'demo', weight: 1 } as ReplicaConfig;
  sink: UpstreamSink | undefined;
  sent: JsonRpcMessage[] = [];
  paused = 0;
  resumed = 0;
  async start(): Promise<void> {}
  send(message: JsonRpcMessage): void {
    this.sent.push(message);
  }
  pause(): void {
    this.paused++;
  }
  resume(): void {
    this.resumed++;
  }
  healthy(): boolean {
    return true;
  }
  async close(): Promise<void> {}
  reply(message: JsonRpcMessage, related?: string | number): void {
    this.sink!.upstreamMessage(message, undefined, related);
  }
}

class FakeChannel implements ClientChannel {
  listener: ChannelListener | undefined;
  closed = false;
  ended = false;
  got: Array<{ seq: number; stream: number; message: any }> = [];
  accept = true;
  bufferedBytes = 0;
  constructor(readonly kind: ClientTransport = 'streamable') {}
  send(seq: number, stream: number, raw: string): boolean {
    this.got.push({ seq, stream, message: JSON.parse(raw) });
    return this.accept;
  }
  end(): void {
    this.ended = true;
    this.closed = true;
  }
  closeCode: number | undefined = undefined;
  close(code: number, _reason: string): void {
    this.closed = true;
    this.closeCode = code;
  }
}

function newSession(
  maxInFlight = 10,
  outbox: { maxMessages: number; maxBytes: number; resumeWindowMs?: number } = {
    maxMessages: 100,
    maxBytes: 10_000,
  },
  dedupeWindowMs = 60_000,
  hooks: Partial<SessionHooks> = {},
) {
  const session = new Session({
    id: 's1',
    clientId: 'c1',
    service: 'demo',
    transport: 'streamable',
    outbox,
    maxInFlight,
    dedupeWindow: 100,
    dedupeWindowMs,
    hooks: {
      clientMessage() {},
      upstreamMessage() {},
      sessionClosed() {},
      overflow() {},
      backpressure() {},
      ...hooks,
    },
  });
  const upstream = new FakeUpstream();
  return { session, upstream };
}

const req = (
  id: number | string,
  method = 'tools/call',
  params: Record<string, unknown> = {},
): JsonRpcMessage => ({
  jsonrpc: '2.0',
  id,
  method,
  params,
});

describe('Session', () => {
  test('messages that arrive before the upstream is ready are forwarded once it is', () => {
    const { session, upstream } = newSession();
    session.receive(req(1), undefined, STANDALONE_STREAM);
    assert.equal(upstream.sent.length, 0);
    session.useUpstream(upstream);
    assert.deepEqual(
      upstream.sent.map((m) => (m as { id: number }).id),
      [1],
    );
  });

  test('a response goes to the stream of its request, which then ends', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const post = new FakeChannel();
    const stream = session.openStream(post);
    session.receive(req(7), undefined, stream);
    session.sealStream(stream);
    upstream.reply({ jsonrpc: '2.0', id: 7, result: { ok: true } });
    assert.equal(post.got.length, 1);
    assert.equal(post.got[0].message.id, 7);
    assert.equal(post.ended, true);
  });

  test('progress follows its token to the request stream; unrelated notifications wait for the GET stream', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const postA = new FakeChannel();
    const postB = new FakeChannel();
    const a = session.openStream(postA);
    const b = session.openStream(postB);
    session.receive(req(1, 'tools/call', { _meta: { progressToken: 'tok' } }), undefined, a);
    session.receive(req(2), undefined, b);
    upstream.reply({
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: 'tok', progress: 1 },
    });
    upstream.reply({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
    assert.equal(postA.got.length, 1);
    assert.equal(postB.got.length, 0);
    const get = new FakeChannel();
    session.attachStandalone(get);
    assert.equal(get.got[0].message.method, 'notifications/tools/list_changed');
  });

  test('a re-sent request in flight is not forwarded again and its answer arrives once, on the new stream', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const first = new FakeChannel();
    const s1 = session.openStream(first);
    session.receive(req('x'), undefined, s1);
    session.sealStream(s1);
    const second = new FakeChannel();
    const s2 = session.openStream(second);
    session.receive(req('x'), undefined, s2);
    session.sealStream(s2);
    assert.equal(upstream.sent.length, 1);
    upstream.reply({ jsonrpc: '2.0', id: 'x', result: {} });
    assert.equal(first.got.length, 0);
    assert.equal(second.got.length, 1);
  });

  test('a re-sent request that was already answered gets the retained answer, not a second upstream call', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    session.receive(req(5), undefined, STANDALONE_STREAM);
    upstream.reply({ jsonrpc: '2.0', id: 5, result: { n: 1 } });
    const channel = new FakeChannel();
    const s = session.openStream(channel);
    session.receive(req(5), undefined, s);
    assert.equal(upstream.sent.length, 1);
    assert.deepEqual(channel.got[0].message.result, { n: 1 });
  });

  test('the answer to a server request goes back to the upstream that asked', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const ws = new FakeChannel('ws');
    session.attachPrimary(ws, undefined);
    upstream.reply({ jsonrpc: '2.0', id: 'srv-1', method: 'sampling/createMessage', params: {} });
    assert.equal(ws.got[0].message.method, 'sampling/createMessage');
    session.receive(
      { jsonrpc: '2.0', id: 'srv-1', result: { role: 'assistant' } },
      undefined,
      STANDALONE_STREAM,
    );
    assert.deepEqual(upstream.sent.at(-1), { jsonrpc: '2.0', id: 'srv-1', result: { role: 'assistant' } });
  });

  test('an answer to an id the session never delivered (or already forwarded) is dropped and reported, never sent upstream', () => {
    const unrequested: unknown[] = [];
    const { session, upstream } = newSession(10, undefined, undefined, {
      unrequestedAnswer: (_s, id) => void unrequested.push(id),
    });
    session.useUpstream(upstream);
    session.attachPrimary(new FakeChannel('ws'), undefined);
    upstream.reply({ jsonrpc: '2.0', id: 'srv-1', method: 'sampling/createMessage', params: {} });
    const sentBefore = upstream.sent.length;
    // Another session's id (guessed or observed), and a null id.
    session.receive({ jsonrpc: '2.0', id: 'srv-2', result: { forged: true } }, undefined, STANDALONE_STREAM);
    session.receive(
      { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'x' } },
      undefined,
      STANDALONE_STREAM,
    );
    assert.equal(upstream.sent.length, sentBefore, 'nothing forwarded');
    session.receive({ jsonrpc: '2.0', id: 'srv-1', result: { real: true } }, undefined, STANDALONE_STREAM);
    session.receive({ jsonrpc: '2.0', id: 'srv-1', result: { again: true } }, undefined, STANDALONE_STREAM);
    assert.deepEqual(upstream.sent.slice(sentBefore), [
      { jsonrpc: '2.0', id: 'srv-1', result: { real: true } },
    ]);
    assert.deepEqual(unrequested, ['srv-2', null, 'srv-1'], 'each dropped answer is reported');
  });

  test('when the upstream goes away every waiting request gets an error that says so', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const ws = new FakeChannel('ws');
    session.attachPrimary(ws, undefined);
    session.receive(req(1), undefined, STANDALONE_STREAM);
    session.receive(req(2), undefined, STANDALONE_STREAM);
    upstream.sink!.upstreamClosed(new Error('child exited'));
    assert.deepEqual(
      ws.got.map((g) => [g.message.id, g.message.error.code]),
      [
        [1, ErrorCode.UpstreamUnavailable],
        [2, ErrorCode.UpstreamUnavailable],
      ],
    );
    assert.match(ws.got[0].message.error.message, /child exited/);
    assert.equal(session.closed, true, 'a session whose upstream is gone for good ends');
    assert.equal(ws.closed, true);
  });

  test('past the in-flight bound a request is refused with retryAfterMs', () => {
    const { session, upstream } = newSession(1);
    session.useUpstream(upstream);
    const ws = new FakeChannel('ws');
    session.attachPrimary(ws, undefined);
    assert.equal(session.receive(req(1), undefined, STANDALONE_STREAM), true);
    assert.equal(session.receive(req(2), undefined, STANDALONE_STREAM), false);
    assert.equal(ws.got[0].message.error.code, ErrorCode.Overloaded);
    assert.equal(typeof ws.got[0].message.error.data.retryAfterMs, 'number');
    assert.equal(upstream.sent.length, 1);
  });

  test('a slow channel pauses the upstream until it drains', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const ws = new FakeChannel('ws');
    ws.accept = false;
    session.attachPrimary(ws, undefined);
    upstream.reply({ jsonrpc: '2.0', method: 'notifications/message', params: {} });
    upstream.reply({ jsonrpc: '2.0', method: 'notifications/message', params: {} });
    assert.equal(upstream.paused, 1);
    session.channelDrained(ws);
    assert.equal(upstream.resumed, 1);
  });

  test('a new connection resumes after the last sequence it saw, and gets everything after it in order', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const first = new FakeChannel('sse');
    session.attachPrimary(first, undefined);
    for (let i = 0; i < 5; i++) upstream.reply({ jsonrpc: '2.0', method: 'n', params: { i } });
    session.channelClosed(first);
    for (let i = 5; i < 8; i++) upstream.reply({ jsonrpc: '2.0', method: 'n', params: { i } });
    const second = new FakeChannel('ws');
    session.attachPrimary(second, 3);
    assert.deepEqual(
      second.got.map((g) => g.message.params.i),
      [3, 4, 5, 6, 7],
    );
    assert.equal(session.transport, 'ws');
  });
});

describe('Session cancellation', () => {
  test('a cancelled request stops being waited for, its stream ends, and the cancel reaches the upstream', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const post = new FakeChannel();
    const stream = session.openStream(post);
    session.receive(req(9), undefined, stream);
    session.sealStream(stream);
    session.receive(
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 9, reason: 'user' } },
      undefined,
      STANDALONE_STREAM,
    );
    assert.equal(session.inFlightCount, 0);
    assert.equal(post.ended, true);
    assert.equal((upstream.sent.at(-1) as { method: string }).method, 'notifications/cancelled');
  });
});

describe('Session public API for transports', () => {
  test('abandonRequest stops waiting without inventing an answer, ends the stream and cancels upstream', () => {
    const { session, upstream } = newSession(1);
    session.useUpstream(upstream);
    const post = new FakeChannel();
    const stream = session.openStream(post);
    session.receive(req(4, 'tools/call', { _meta: { progressToken: 'p' } }), undefined, stream);
    session.sealStream(stream);
    assert.equal(session.abandonRequest(4, 'client went away'), true);
    assert.equal(session.inFlightCount, 0, 'no longer counts against the in-flight bound');
    assert.equal(post.ended, true, 'its stream ends');
    assert.equal(post.got.length, 0, 'no answer was made up');
    assert.equal(session.outbox.size, 0, 'nothing was queued for the client');
    assert.deepEqual(upstream.sent.at(-1), {
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: 4, reason: 'client went away' },
    });
    upstream.reply({ jsonrpc: '2.0', id: 4, result: {} });
    upstream.reply({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'p' } });
    assert.equal(post.got.length, 0, 'a late answer is dropped');
    assert.equal(session.receive(req(5), undefined, STANDALONE_STREAM), true, 'the slot is free again');
  });

  test('abandonRequest can skip the upstream notice, and ignores requests not in flight', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    session.receive(req('a'), undefined, STANDALONE_STREAM);
    assert.equal(session.abandonRequest('a', 'gone', false), true);
    assert.equal(upstream.sent.length, 1, 'only the request itself went up');
    assert.equal(session.abandonRequest('a', 'gone'), false, 'already abandoned');
    assert.equal(session.abandonRequest('never', 'gone'), false);
    assert.equal(upstream.sent.length, 1, 'no cancel for what is not in flight');
  });

  test('abandonRequest before the upstream is ready sends the cancel after the request', () => {
    const { session, upstream } = newSession();
    session.receive(req(1), undefined, STANDALONE_STREAM);
    session.abandonRequest(1, 'gone');
    session.useUpstream(upstream);
    assert.deepEqual(
      upstream.sent.map((m) => (m as { method: string }).method),
      ['tools/call', 'notifications/cancelled'],
    );
  });

  test('detachStandalone removes the standalone stream without closing it; later messages wait', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const first = new FakeChannel();
    session.attachStandalone(first);
    upstream.reply({ jsonrpc: '2.0', method: 'n', params: { i: 1 } });
    assert.equal(session.detachStandalone(new FakeChannel()), false, 'not the attached one');
    assert.equal(session.detachStandalone(first), true);
    assert.equal(first.listener, undefined);
    assert.equal(first.closed, false, 'the caller owns the channel');
    assert.equal(session.hasLiveChannel(), false);
    assert.equal(session.detachStandalone(first), false, 'already detached');
    upstream.reply({ jsonrpc: '2.0', method: 'n', params: { i: 2 } });
    assert.equal(first.got.length, 1, 'nothing more reaches the detached channel');
    const second = new FakeChannel();
    session.attachStandalone(second);
    assert.deepEqual(
      second.got.map((g) => g.message.params.i),
      [2],
      'the next standalone stream gets only what nobody received',
    );
  });

  test('detachStandalone resumes an upstream paused for that channel', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const get = new FakeChannel();
    get.accept = false;
    session.attachStandalone(get);
    upstream.reply({ jsonrpc: '2.0', method: 'n', params: {} });
    assert.equal(upstream.paused, 1);
    session.detachStandalone(get);
    assert.equal(upstream.resumed, 1);
  });

  test('ack drops entries up to a seq; ackAll drops everything delivered', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const ws = new FakeChannel('ws');
    session.attachPrimary(ws, undefined);
    for (let i = 0; i < 4; i++) upstream.reply({ jsonrpc: '2.0', method: 'n', params: { i } });
    assert.equal(session.outbox.size, 4);
    session.ack(2);
    assert.equal(session.outbox.size, 2);
    session.ack(99);
    session.ack(-1);
    session.ack(1.5);
    assert.equal(session.outbox.size, 2, 'a seq never issued (or not a seq) is ignored');
    session.ackAll();
    assert.equal(session.outbox.size, 0);
    upstream.reply({ jsonrpc: '2.0', method: 'n', params: { i: 4 } });
    assert.equal(session.outbox.size, 1, 'later messages are retained as usual');
  });
});

describe('Session backpressure bound', () => {
  test('a reader that stays behind past the bound ends the session with a reason and code 4008', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const ws = new FakeChannel('ws');
    ws.accept = false;
    let closedWith: [number, string] | undefined;
    ws.close = (code: number, reason: string) => {
      closedWith = [code, reason];
      ws.closed = true;
    };
    session.attachPrimary(ws, undefined);
    upstream.reply({ jsonrpc: '2.0', method: 'notifications/message', params: {} });
    assert.equal(upstream.paused, 1, 'first the upstream is paused');
    assert.equal(session.closed, false);
    ws.bufferedBytes = 20_000;
    upstream.reply({ jsonrpc: '2.0', method: 'notifications/message', params: {} });
    assert.equal(session.closed, true);
    assert.equal(closedWith?.[0], 4008);
    assert.match(closedWith?.[1] ?? '', /outbox overflow/);
  });
});

describe('Session moving to Streamable HTTP', () => {
  test('a GET stream takes over from a still-open WebSocket, which is closed with 4002', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const ws = new FakeChannel('ws');
    let closeCode = 0;
    ws.close = (code: number) => {
      closeCode = code;
      ws.closed = true;
    };
    session.attachPrimary(ws, undefined);
    upstream.reply({ jsonrpc: '2.0', method: 'n', params: { i: 1 } });
    const get = new FakeChannel();
    session.resumeStream(get, STANDALONE_STREAM, 1);
    assert.equal(closeCode, 4002);
    const post = new FakeChannel();
    const stream = session.openStream(post);
    session.receive(req(3), undefined, stream);
    session.sealStream(stream);
    upstream.reply({ jsonrpc: '2.0', id: 3, result: {} });
    upstream.reply({ jsonrpc: '2.0', method: 'n', params: { i: 2 } });
    assert.equal(post.got.length, 1, 'the POST gets its answer');
    assert.equal(get.got.at(-1)?.message.params.i, 2, 'the GET stream gets the rest');
    assert.equal(ws.got.length, 1, 'nothing more goes to the old connection');
  });
});

describe('Session request timeout', () => {
  test('a request with no answer and no progress gets UpstreamTimeout and is cancelled upstream', (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const ws = new FakeChannel('ws');
    session.attachPrimary(ws, undefined);
    session.receive(
      req('slow', 'tools/call', { _meta: { progressToken: 't' } }),
      undefined,
      STANDALONE_STREAM,
    );
    assert.equal(session.expireRequests(1_000_500, 1000), 0, 'not yet');
    t.mock.timers.tick(800);
    upstream.reply({
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: 't', progress: 1 },
    });
    assert.equal(
      session.expireRequests(1_001_500, 1000),
      0,
      'progress at +800 ms kept it alive past +1000 ms',
    );
    assert.equal(session.expireRequests(1_001_800, 1000), 1);
    const answer = ws.got.at(-1)!.message;
    assert.equal(answer.id, 'slow');
    assert.equal(answer.error.code, ErrorCode.UpstreamTimeout);
    assert.deepEqual(upstream.sent.at(-1), {
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: 'slow', reason: 'gateway request timeout' },
    });
    assert.equal(session.inFlightCount, 0);
  });
});

describe('Session policy key', () => {
  test('anonymous sessions count as themselves, named clients as the client', () => {
    const make = (id: string, clientId: string) =>
      new Session({
        id,
        clientId,
        service: 'demo',
        transport: 'ws',
        outbox: { maxMessages: 10, maxBytes: 1e4 },
        maxInFlight: 1,
        dedupeWindow: 1,
        dedupeWindowMs: 1000,
        hooks: {
          clientMessage() {},
          upstreamMessage() {},
          sessionClosed() {},
          overflow() {},
          backpressure() {},
        },
      });
    assert.notEqual(make('a', ANONYMOUS_CLIENT).policyKey, make('b', ANONYMOUS_CLIENT).policyKey);
    assert.equal(make('a', 'acme').policyKey, make('b', 'acme').policyKey);
  });
});

describe('Session hardening (issue 6)', () => {
  const note = (i: number): JsonRpcMessage => ({ jsonrpc: '2.0', method: 'n', params: { i } });

  test('defect 3: a resume past the end is refused, acknowledges nothing, and later losses stay visible', () => {
    // The measured case at small scale: outbox of 8, one resume from the future, 10 answers
    // while detached, then a resume from the start must fail instead of replaying 8 of 10.
    const { session, upstream } = newSession(10, { maxMessages: 8, maxBytes: 1e6 });
    session.useUpstream(upstream);
    const first = new FakeChannel('ws');
    session.attachPrimary(first, undefined);
    upstream.reply(note(0));
    session.channelClosed(first);
    assert.throws(
      () => session.attachPrimary(new FakeChannel('ws'), 1000),
      (err: unknown) => err instanceof ResumeUnavailableError && /only sent events up to 1/.test(err.message),
    );
    assert.equal(session.hasLiveChannel(), false, 'the refused connection was not attached');
    for (let i = 1; i <= 10; i++) upstream.reply(note(i));
    assert.throws(() => session.attachPrimary(new FakeChannel('ws'), 1), ResumeUnavailableError);
    // A Streamable HTTP resume from the future is refused the same way.
    assert.throws(
      () => session.resumeStream(new FakeChannel(), STANDALONE_STREAM, 99),
      ResumeUnavailableError,
    );
    session.ack(1000);
    assert.equal(session.outbox.size, 8, 'an acknowledgement from the future drops nothing');
    const ok = new FakeChannel('ws');
    session.attachPrimary(ok, 3);
    assert.deepEqual(
      ok.got.map((g) => g.message.params.i),
      [3, 4, 5, 6, 7, 8, 9, 10],
      'a valid position still resumes',
    );
  });

  test('defect 7: a primary connection attaching closes the open POST streams; answers come on it', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const post = new FakeChannel();
    const stream = session.openStream(post);
    session.receive(req(1), undefined, stream);
    session.sealStream(stream);
    const get = new FakeChannel();
    session.attachStandalone(get);
    const ws = new FakeChannel('ws');
    session.attachPrimary(ws, undefined);
    assert.equal(post.closed, true, 'the POST stream is not left open');
    assert.equal(post.closeCode, 409);
    assert.equal(get.closed, true, 'nor the GET stream');
    upstream.reply({ jsonrpc: '2.0', id: 1, result: { ok: true } });
    assert.equal(ws.got.at(-1)?.message.id, 1, 'the answer arrives on the primary');
    assert.equal(post.got.length, 0);
  });

  test('defect 7: resuming a POST stream closes the channel it replaces', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    const post = new FakeChannel();
    const stream = session.openStream(post);
    session.receive(req(1), undefined, stream);
    session.sealStream(stream);
    const resumed = new FakeChannel();
    session.resumeStream(resumed, stream, 0);
    assert.equal(post.closed, true, 'the half-open POST stream is closed');
    upstream.reply({ jsonrpc: '2.0', id: 1, result: { ok: true } });
    assert.equal(resumed.got[0].message.id, 1);
    assert.equal(resumed.ended, true);
  });

  test('defect 7: a POST stream opened while a primary is attached still ends', () => {
    const { session, upstream } = newSession();
    session.useUpstream(upstream);
    session.attachPrimary(new FakeChannel('ws'), undefined);
    const post = new FakeChannel();
    const stream = session.openStream(post);
    session.receive(req(1), undefined, stream);
    session.sealStream(stream);
    upstream.reply({ jsonrpc: '2.0', id: 1, result: { ok: true } });
    assert.equal(post.ended, true);
  });

  test('defect 9: messages waiting for the upstream to connect are bounded; past it -31003 with retryAfterMs', () => {
    const { session, upstream } = newSession(2);
    const ws = new FakeChannel('ws');
    session.attachPrimary(ws, undefined);
    session.receive({ jsonrpc: '2.0', method: 'notifications/initialized' }, undefined, STANDALONE_STREAM);
    assert.equal(session.receive(req(1), undefined, STANDALONE_STREAM), true);
    assert.equal(session.receive(req(2), undefined, STANDALONE_STREAM), false, 'the queue is full');
    session.receive(
      { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
      undefined,
      STANDALONE_STREAM,
    );
    assert.deepEqual(
      ws.got.map((g) => [g.message.id, g.message.error?.code, typeof g.message.error?.data?.retryAfterMs]),
      [
        [2, ErrorCode.Overloaded, 'number'],
        [null, ErrorCode.Overloaded, 'number'],
      ],
    );
    assert.equal(session.inFlightCount, 1, 'the refused request is not in flight');
    session.useUpstream(upstream);
    assert.deepEqual(
      upstream.sent.map(
        (m) => (m as { id?: number; method?: string }).id ?? (m as { method: string }).method,
      ),
      ['notifications/initialized', 1],
    );
    // Once connected, nothing waits: no bound applies.
    assert.equal(session.receive(req(3), undefined, STANDALONE_STREAM), true);
  });

  test('defect 9: the waiting queue is bounded in bytes too', () => {
    const { session } = newSession(100, { maxMessages: 100, maxBytes: 100 });
    const ws = new FakeChannel('ws');
    session.attachPrimary(ws, undefined);
    const big = JSON.stringify(req(1, 'tools/call', { pad: 'x'.repeat(80) }));
    assert.equal(session.receive(JSON.parse(big), big, STANDALONE_STREAM), true);
    assert.equal(session.receive(req(2), big, STANDALONE_STREAM), false);
    assert.equal(ws.got[0].message.error.code, ErrorCode.Overloaded);
  });

  test('defect 10: delivered messages are kept only for the resume window; undelivered ones stay', () => {
    const { session, upstream } = newSession(10, { maxMessages: 100, maxBytes: 1e6, resumeWindowMs: 1000 });
    session.useUpstream(upstream);
    const ws = new FakeChannel('ws');
    session.attachPrimary(ws, undefined);
    for (let i = 0; i < 5; i++) upstream.reply(note(i));
    const t0 = Date.now();
    assert.equal(session.expireRetained(t0 + 10), 0, 'inside the window nothing goes');
    session.channelClosed(ws);
    for (let i = 5; i < 8; i++) upstream.reply(note(i));
    assert.equal(session.expireRetained(t0 + 5000), 5, 'the five delivered ones go after the window');
    assert.equal(session.outbox.size, 3, 'the three nobody received stay');
    assert.equal(session.outbox.deliveredBytes, 0);
    assert.throws(() => session.attachPrimary(new FakeChannel('ws'), 2), ResumeUnavailableError);
    const back = new FakeChannel('ws');
    session.attachPrimary(back, 5);
    assert.deepEqual(
      back.got.map((g) => g.message.params.i),
      [5, 6, 7],
    );
  });

  test('defect 10: completed request ids are forgotten after the de-duplication window', () => {
    const { session, upstream } = newSession(10, { maxMessages: 100, maxBytes: 1e6 }, 1000);
    session.useUpstream(upstream);
    const ws = new FakeChannel('ws');
    session.attachPrimary(ws, undefined);
    session.receive(req(1), undefined, STANDALONE_STREAM);
    upstream.reply({ jsonrpc: '2.0', id: 1, result: {} });
    session.receive(req(1), undefined, STANDALONE_STREAM);
    assert.equal(upstream.sent.length, 1, 'inside the window a re-sent id is answered from the outbox');
    session.expireRetained(Date.now() + 2000);
    session.receive(req(1), undefined, STANDALONE_STREAM);
    assert.equal(upstream.sent.length, 2, 'after it the id is new again');
  });
});
