/**
 * A session that ends while a client listens on an HTTP stream says why before the stream ends:
 * a last `event: error` whose data carries the JSON-RPC code (−31005: start over), the close
 * code (README's table: 4001 ended, 4008 overflow) and the reason — on legacy SSE, the
 * Streamable HTTP GET stream and a POST stream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ErrorCode } from '../libs/protocol/src';
import { SESSION_ENDED_CODE, SESSION_OVERFLOW_CODE, type Session } from '../src/session/session';
import { SessionService } from '../src/session/session.module';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { SseReader } from './helpers/sse-reader';
import { call, openSession, sessionHeaders } from './helpers/streamable-http-client';

const VERSION = '2025-11-25';

interface Listening {
  session: Session;
  reader: SseReader;
}

type StreamKind = 'legacy SSE stream' | 'Streamable HTTP GET stream' | 'Streamable HTTP POST stream';

/** Opens a session with a client listening on a stream of `kind`, the stream already open. */
async function listen(base: string, sessions: SessionService, kind: StreamKind): Promise<Listening> {
  if (kind === 'legacy SSE stream') {
    const res = await fetch(`${base}/sse`, { headers: { accept: 'text/event-stream' } });
    assert.equal(res.status, 200);
    const reader = new SseReader(res);
    const endpoint = await reader.next();
    assert.equal(endpoint?.event, 'endpoint');
    const id = new URL(endpoint!.data, base).searchParams.get('sessionId')!;
    return { session: sessions.get(id)!, reader };
  }
  const id = await openSession(base, VERSION);
  const res =
    kind === 'Streamable HTTP GET stream'
      ? await fetch(`${base}/mcp`, {
          headers: { ...sessionHeaders(id, VERSION), accept: 'text/event-stream' },
        })
      : await fetch(`${base}/mcp`, {
          method: 'POST',
          headers: sessionHeaders(id, VERSION),
          body: JSON.stringify(
            call('long', 'long_task', { duration: 30, steps: 30 }, { progressToken: 't' }),
          ),
        });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
  const reader = new SseReader(res);
  // The priming event (an id, empty data): the stream is open.
  const first = await reader.next();
  assert.ok(first?.id, 'priming event');
  return { session: sessions.get(id)!, reader };
}

/** Reads to the end of the stream; returns the events after the ones already read. */
async function rest(reader: SseReader): Promise<Array<{ event: string; data: string; id?: string }>> {
  const events = [];
  for (let e = await reader.next(); e; e = await reader.next()) events.push(e);
  return events;
}

describe('a session that ends on an HTTP stream ends it with an error event that says why', () => {
  let gw: RunningGateway;
  let sessions: SessionService;
  before(async () => {
    gw = await startGateway();
    sessions = gw.gateway.app.get(SessionService);
  });
  after(() => gw.close());

  const ends: Array<{ why: string; end: (s: Session) => void; code: number; message: RegExp }> = [
    {
      why: 'idle expiry',
      end: (s) => sessions.end(s, 'session expired after idle timeout'),
      code: SESSION_ENDED_CODE,
      message: /expired after idle timeout/,
    },
    {
      why: 'outbox overflow',
      end: (s) =>
        sessions.end(
          s,
          'outbox overflow: 9999999 bytes waiting for a client that reads too slowly',
          SESSION_OVERFLOW_CODE,
        ),
      code: SESSION_OVERFLOW_CODE,
      message: /outbox overflow/,
    },
    {
      why: 'upstream gone',
      end: (s) => s.upstreamClosed(new Error('upstream exited')),
      code: SESSION_ENDED_CODE,
      message: /upstream gone: upstream exited/,
    },
  ];

  for (const kind of [
    'legacy SSE stream',
    'Streamable HTTP GET stream',
    'Streamable HTTP POST stream',
  ] as StreamKind[]) {
    for (const e of ends) {
      // Upstream gone answers the POST's request with an error first (it must not hang), which
      // completes that stream normally: covered by the in-flight tests, not an ending here.
      if (kind === 'Streamable HTTP POST stream' && e.why === 'upstream gone') continue;
      test(`${kind}, ${e.why}: error event with −31005, close code ${e.code} and the reason, then the end`, async () => {
        const { session, reader } = await listen(gw.url, sessions, kind);
        e.end(session);
        const events = (await rest(reader)).filter((ev) => ev.event !== 'message');
        assert.equal(events.length, 1, `one closing event, got ${JSON.stringify(events)}`);
        assert.equal(events[0].event, 'error');
        assert.equal(events[0].id, undefined, 'no id: it is not a position to resume from');
        const data = JSON.parse(events[0].data);
        assert.equal(data.code, ErrorCode.SessionNotFound, 'the session is gone: start a new one');
        assert.equal(data.closeCode, e.code);
        assert.match(data.message, e.message);
        assert.equal(sessions.get(session.id), undefined, 'the session is gone');
      });
    }
  }
});
