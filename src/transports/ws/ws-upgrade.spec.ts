import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { resumeRequest } from './ws-upgrade';

describe('resumeRequest', () => {
  test('nothing named: a new session', () => {
    assert.equal(resumeRequest({}, {}), undefined);
  });

  test('headers: Mcp-Session-Id + Last-Event-ID', () => {
    assert.deepEqual(resumeRequest({ 'mcp-session-id': 'abc', 'last-event-id': '42' }, {}), {
      sessionId: 'abc',
      afterSeq: 42,
    });
  });

  test('query parameters for browsers', () => {
    assert.deepEqual(resumeRequest({}, { sessionId: 'abc', lastEventId: '7' }), {
      sessionId: 'abc',
      afterSeq: 7,
    });
  });

  test('a session without a position resumes from what no connection received', () => {
    assert.deepEqual(resumeRequest({}, { sessionId: 'abc' }), { sessionId: 'abc', afterSeq: undefined });
  });

  test('event ids of the other transports (failover) are understood', () => {
    assert.deepEqual(resumeRequest({ 'last-event-id': 'abc.9' }, {}), { sessionId: 'abc', afterSeq: 9 });
    assert.deepEqual(resumeRequest({ 'mcp-session-id': 'abc', 'last-event-id': '3_9' }, {}), {
      sessionId: 'abc',
      afterSeq: 9,
    });
  });

  test('a position that is not a number, or one without a session, is malformed', () => {
    assert.equal(resumeRequest({}, { sessionId: 'abc', lastEventId: 'soon' }), 'malformed');
    assert.equal(resumeRequest({}, { lastEventId: '5' }), 'malformed');
  });
});
