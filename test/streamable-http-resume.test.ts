import { ErrorCode } from '../libs/protocol/src';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SessionService } from '../src/session/session.module';
import { startGateway, type RunningGateway } from './helpers/gateway';
import {
  call,
  messagesOf,
  openSession,
  raw,
  readSse,
  sessionHeaders,
  type SseEvent,
} from './helpers/streamable-http-client';

const V = '2025-11-25';

function seqOf(e: SseEvent): number {
  return Number(e.id!.split('_')[1]);
}

describe('Streamable HTTP: resumption and the standalone stream', () => {
  let gw: RunningGateway;
  let base: string;

  before(async () => {
    gw = await startGateway();
    base = gw.url;
  });
  after(async () => {
    await gw.close();
  });

  async function cutAfterFirstProgress(sessionId: string, id: number, steps: number, duration: number) {
    const res = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: sessionHeaders(sessionId, V),
      body: JSON.stringify(call(id, 'long_task', { duration, steps }, { progressToken: `tok-${id}` })),
    });
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    // The client goes away right after the first progress notification.
    const first = await readSse(res, (events) =>
      messagesOf(events).some((m) => m.method === 'notifications/progress'),
    );
    assert.equal(first.ended, false);
    return first.events;
  }

  async function resume(sessionId: string, lastEventId: string) {
    const res = await fetch(`${base}/mcp`, {
      method: 'GET',
      headers: {
        accept: 'text/event-stream',
        'mcp-session-id': sessionId,
        'mcp-protocol-version': V,
        'last-event-id': lastEventId,
      },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    return readSse(res);
  }

  function assertWholeStream(events: SseEvent[], id: number, steps: number) {
    const withData = events.filter((e) => e.data !== '');
    const streams = new Set(events.map((e) => e.id!.split('_')[0]));
    assert.equal(streams.size, 1, 'every event belongs to the one stream');
    const seqs = withData.map(seqOf);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `in order: ${seqs}`);
    const messages = messagesOf(events);
    assert.deepEqual(
      messages.filter((m) => m.method === 'notifications/progress').map((m) => m.params.progress),
      Array.from({ length: steps }, (_, i) => i + 1),
      'every progress notification exactly once, in order',
    );
    const answers = messages.filter((m) => m.id === id);
    assert.equal(answers.length, 1, 'the answer exactly once');
    assert.equal(messages.at(-1).id, id, 'the answer comes last');
    assert.equal(answers[0].result.content[0].text, `Long task finished: ${steps} steps in ${0.8} s`);
  }

  it('a stream cut mid-flight resumes with GET + Last-Event-ID: every message once, in order, then the answer', async () => {
    const sessionId = await openSession(base, V);
    const first = await cutAfterFirstProgress(sessionId, 11, 4, 0.8);
    const rest = await resume(sessionId, first.at(-1)!.id!);
    assert.ok(rest.ended, 'the resumed stream ends after the answer');
    assertWholeStream([...first, ...rest.events], 11, 4);
  });

  it('resuming after the request finished while disconnected replays the rest and ends', async () => {
    const sessionId = await openSession(base, V);
    const first = await cutAfterFirstProgress(sessionId, 12, 4, 0.8);
    // Wait for the answer to reach the session (nothing in flight), not for a fixed time.
    const session = gw.gateway.app.get(SessionService).get(sessionId)!;
    const deadline = Date.now() + 10_000;
    while (session.inFlightCount > 0 && Date.now() < deadline) await sleep(20);
    assert.equal(session.inFlightCount, 0, 'the request finished while the client was away');
    const rest = await resume(sessionId, first.at(-1)!.id!);
    assert.ok(rest.ended);
    assertWholeStream([...first, ...rest.events], 12, 4);
  });

  it('resuming from the priming event id replays the whole stream', async () => {
    const sessionId = await openSession(base, V);
    const res = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: sessionHeaders(sessionId, V),
      body: JSON.stringify(call(13, 'long_task', { duration: 0.8, steps: 4 }, { progressToken: 'p13' })),
    });
    const primed = await readSse(res, (events) => events.length >= 1);
    assert.equal(primed.events[0].data, '');
    const rest = await resume(sessionId, primed.events[0].id!);
    assertWholeStream(rest.events, 13, 4);
  });

  it('a resume only replays its own stream', async () => {
    const sessionId = await openSession(base, V);
    const a = await cutAfterFirstProgress(sessionId, 21, 4, 0.8);
    const b = await cutAfterFirstProgress(sessionId, 22, 4, 0.8);
    const restA = await resume(sessionId, a.at(-1)!.id!);
    const restB = await resume(sessionId, b.at(-1)!.id!);
    assert.ok(messagesOf(restA.events).every((m) => m.id !== 22 && m.params?.progressToken !== 'tok-22'));
    assert.ok(messagesOf(restB.events).every((m) => m.id !== 21 && m.params?.progressToken !== 'tok-21'));
    assertWholeStream([...a, ...restA.events], 21, 4);
    assertWholeStream([...b, ...restB.events], 22, 4);
  });

  it('the standalone GET stream primes itself and receives server-initiated messages', async () => {
    const sessionId = await openSession(base, V);
    const get = await fetch(`${base}/mcp`, {
      method: 'GET',
      headers: { accept: 'text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': V },
    });
    assert.equal(get.status, 200);
    assert.match(get.headers.get('content-type')!, /^text\/event-stream/);
    const reading = readSse(get, (events) =>
      messagesOf(events).some((m) => m.method === 'notifications/message'),
    );
    // Two tasks at once: their log messages are not tied to either request, so they go to the GET stream.
    const posts = [31, 32].map((id) =>
      raw(base, {
        headers: sessionHeaders(sessionId, V),
        body: JSON.stringify(call(id, 'long_task', { duration: 0.4, steps: 2 })),
      }),
    );
    const { events, retry } = await reading;
    assert.equal(retry, 1000);
    assert.equal(events[0].data, '', 'priming event');
    assert.equal(events[0].id!.split('_')[0], '0');
    const log = messagesOf(events).find((m) => m.method === 'notifications/message');
    assert.match(String(log.params.data), /step \d of 2 done/);
    for (const e of events) assert.equal(e.id!.split('_')[0], '0', 'standalone stream ids');
    for (const p of await Promise.all(posts)) assert.equal(p.status, 200);
  });
});

describe('Streamable HTTP: resume beyond what the outbox keeps', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway({ session: { outboxMaxMessages: 2 } });
  });
  after(async () => {
    await gw.close();
  });

  it('answers 409 with a JSON-RPC error that says what is still available', async () => {
    const sessionId = await openSession(gw.url, V);
    const res = await fetch(`${gw.url}/mcp`, {
      method: 'POST',
      headers: sessionHeaders(sessionId, V),
      body: JSON.stringify(call(1, 'long_task', { duration: 0.3, steps: 6 }, { progressToken: 'x' })),
    });
    // Read the whole stream (6 progress notifications and the answer): by then the outbox,
    // which keeps 2, has dropped the first event.
    const primed = await readSse(res, (events) => messagesOf(events).some((m) => m.id === 1));
    assert.ok(primed.events.length > 3, `${primed.events.length} events`);
    const resumed = await raw(gw.url, {
      method: 'GET',
      headers: {
        accept: 'text/event-stream',
        'mcp-session-id': sessionId,
        'mcp-protocol-version': V,
        'last-event-id': primed.events[0].id!,
      },
    });
    assert.equal(resumed.status, 409);
    assert.equal(resumed.json.error.code, ErrorCode.ResumeUnavailable);
    assert.ok(resumed.json.error.data.oldestAvailable > resumed.json.error.data.requested);
  });
});
