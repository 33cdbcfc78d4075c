import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SseParser, type SseHandler } from './sse-parser';

type Event = [event: string, data: string, id: string | undefined];

class Collect implements SseHandler {
  events: Event[] = [];
  retries: number[] = [];
  sseEvent(data: string, event: string, id: string | undefined) {
    this.events.push([event, data, id]);
  }
  sseRetry(ms: number) {
    this.retries.push(ms);
  }
}

/** Feeds the chunks to a parser that also dispatches empty-data events (the client's mode), then ends it. */
function parse(...chunks: Array<string | Uint8Array>): Collect {
  const c = new Collect();
  const parser = new SseParser(c, true);
  for (const chunk of chunks) {
    if (typeof chunk === 'string') parser.push(chunk);
    else parser.pushBytes(chunk);
  }
  parser.end();
  return c;
}

describe('SseParser', () => {
  test('multi-line data, comments, ids, retry, CR/LF/CRLF split across chunks, BOM, priming', () => {
    const c = new Collect();
    const p = new SseParser(c);
    const text =
      '\ufeff: comment\r\nid: 1\r\nretry: 250\r\ndata: \r\n\r\n' + // priming event: id, retry, empty data
      'event: message\ndata: {"a":\ndata:1}\n\n' +
      'id: 7\rdata: x\r\r' +
      'event: endpoint\ndata: /messages?s=1\n\n' +
      'data: ignored-without-blank-line';
    const bytes = new TextEncoder().encode(text);
    for (let i = 0; i < bytes.length; i += 3) p.pushBytes(bytes.subarray(i, i + 3));
    assert.deepEqual(c.events, [
      ['message', '{"a":\n1}', undefined],
      ['message', 'x', '7'],
      ['endpoint', '/messages?s=1', undefined],
    ]);
    assert.deepEqual(c.retries, [250]);
    assert.equal(p.lastEventId, '7');
  });

  test('multi-byte characters split between chunks', () => {
    const c = new Collect();
    const p = new SseParser(c);
    const bytes = new TextEncoder().encode('data: héllo 🌍\n\n');
    for (let i = 0; i < bytes.length; i++) p.pushBytes(bytes.subarray(i, i + 1));
    assert.deepEqual(c.events, [['message', 'héllo 🌍', undefined]]);
  });

  test('parses events with their own ids, types and data', () => {
    assert.deepEqual(
      parse('id: 3_17\nevent: message\ndata: {"a":1}\n\nevent: endpoint\ndata: /messages?sessionId=x\n\n')
        .events,
      [
        ['message', '{"a":1}', '3_17'],
        ['endpoint', '/messages?sessionId=x', undefined],
      ],
    );
  });

  test('joins multi-line data and defaults the type to "message"', () => {
    assert.deepEqual(parse('data: {\ndata:   "x": 1\ndata: }\n\n').events, [
      ['message', '{\n  "x": 1\n}', undefined],
    ]);
  });

  test('reassembles events split anywhere across chunks, including inside UTF-8 sequences', () => {
    const text = 'id: 1\ndata: {"t":"héllo ✓"}\n\n';
    const bytes = new TextEncoder().encode(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const { events } = parse(bytes.slice(0, cut), bytes.slice(cut));
      assert.deepEqual(events, [['message', '{"t":"héllo ✓"}', '1']], `cut at ${cut}`);
    }
  });

  test('accepts CRLF, CR and LF line endings, even with CRLF split between chunks', () => {
    const expected: Event[] = [['message', 'a', '1']];
    assert.deepEqual(parse('id: 1\r\ndata: a\r\n\r\n').events, expected);
    assert.deepEqual(parse('id: 1\rdata: a\r\r').events, expected);
    assert.deepEqual(parse('id: 1\r', '\ndata: a\r', '\n\r', '\n').events, expected);
  });

  test('skips comments (keep-alives), a leading BOM and unknown fields; reads retry', () => {
    const c = parse('\uFEFF: keep-alive\n\nretry: 1000\n\nfoo: bar\nid: 9\ndata: x\n\n');
    assert.deepEqual(c.events, [
      ['message', '', undefined],
      ['message', 'x', '9'],
    ]);
    assert.deepEqual(c.retries, [1000]);
  });

  test('dispatches priming events (an id and empty data) and keeps the last event id', () => {
    const c = new Collect();
    const parser = new SseParser(c, true);
    parser.push('id: 4_10\ndata: \n\n');
    assert.deepEqual(c.events, [['message', '', '4_10']]);
    assert.equal(parser.lastEventId, '4_10');
  });

  test('without dispatchEmpty, priming events are not dispatched but their id is kept', () => {
    const c = new Collect();
    const parser = new SseParser(c);
    parser.push('id: 4_10\ndata: \n\nid: 4_11\n\ndata:  \n\n');
    assert.deepEqual(c.events, []);
    assert.equal(parser.lastEventId, '4_11');
  });

  test('field without a colon, value without the optional space, ids with NUL ignored', () => {
    assert.deepEqual(parse('data\ndata:x\n\n').events, [['message', '\nx', undefined]]);
    assert.deepEqual(parse('id: a\0b\ndata: y\n\n').events, [['message', 'y', undefined]]);
  });

  test('an event cut off by the end of the stream is not dispatched', () => {
    assert.deepEqual(parse('id: 1\ndata: complete\n\nid: 2\ndata: partial').events, [
      ['message', 'complete', '1'],
    ]);
  });
});
