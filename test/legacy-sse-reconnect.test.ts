/**
 * Legacy SSE: an EventSource that loses its stream before the first message reconnects with the
 * Last-Event-ID of the last event that had an id — the `endpoint` event — and must find its
 * session again, not get a fresh uninitialised one while the old one holds its upstream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SessionService } from '../src/session/session.module';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { SseReader } from './helpers/sse-reader';
import { waitUntil } from './helpers/wait';

const INIT = {
  jsonrpc: '2.0',
  id: 0,
  method: 'initialize',
  params: {
    protocolVersion: '2024-11-05',
    capabilities: {},
    clientInfo: { name: 'reconnect', version: '1' },
  },
};

/** What a raw EventSource does: GET /sse, sending Last-Event-ID when it has one. */
async function connect(base: string, lastEventId?: string) {
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
  const res = await fetch(`${base}/sse`, { headers });
  assert.equal(res.status, 200);
  const reader = new SseReader(res);
  const endpoint = await reader.next();
  assert.equal(endpoint?.event, 'endpoint');
  const postUrl = new URL(endpoint!.data, base).toString();
  return { reader, endpoint: endpoint!, postUrl, sessionId: new URL(postUrl).searchParams.get('sessionId')! };
}

describe('legacy SSE reconnect before the first message', () => {
  let gw: RunningGateway;
  let sessions: SessionService;
  before(async () => {
    gw = await startGateway();
    sessions = gw.gateway.app.get(SessionService);
  });
  after(() => gw.close());

  test('the endpoint event carries an id; reconnecting with it resumes the same session, none left behind', async () => {
    const before = sessions.size;
    const first = await connect(gw.url);
    assert.equal(
      first.endpoint.id,
      `${first.sessionId}.0`,
      'endpoint event id names the session, position 0',
    );
    assert.equal(sessions.size, before + 1);
    await first.reader.cancel();
    await waitUntil(
      () => sessions.get(first.sessionId)?.hasLiveChannel() === false,
      5000,
      'the server to see the drop',
    );

    const second = await connect(gw.url, first.endpoint.id);
    assert.equal(second.sessionId, first.sessionId, 'same session');
    assert.equal(second.endpoint.id, `${first.sessionId}.0`);
    assert.equal(sessions.size, before + 1, 'no second session (and no second upstream)');

    // The resumed session is the one the client will initialise: it answers on the new stream.
    const res = await fetch(second.postUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(INIT),
    });
    assert.equal(res.status, 202);
    const answer = await second.reader.nextMessage();
    assert.equal(answer?.message.id, 0);
    assert.ok(answer?.message.result.serverInfo);
    assert.equal(answer?.id, `${first.sessionId}.1`);
    await second.reader.cancel();
  });

  test('a reconnect after messages re-announces the endpoint at the resume position', async () => {
    const first = await connect(gw.url);
    await fetch(first.postUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(INIT),
    });
    const answer = await first.reader.nextMessage();
    assert.equal(answer?.id, `${first.sessionId}.1`);
    await first.reader.cancel();
    const second = await connect(gw.url, answer!.id);
    assert.equal(second.sessionId, first.sessionId);
    // Not ahead of what the client has: a drop right after this event loses nothing.
    assert.equal(second.endpoint.id, `${first.sessionId}.1`);
    await second.reader.cancel();
  });
});
