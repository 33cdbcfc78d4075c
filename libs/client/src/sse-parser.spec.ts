import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SseParser, type SseEvent } from './sse-parser';

function parse(...chunks: Array<string | Uint8Array>): SseEvent[] {
  const events: SseEvent[] = [];
  const parser = new SseParser((e) => events.push(e));
  for (const c of chunks) parser.push(c);
  parser.end();
  return events;
}

describe('SseParser', () => {
  test('parses events with their own ids, types and data', () => {
    assert.deepEqual(
      parse('id: 3_17\nevent: message\ndata: {"a":1}\n\nevent: endpoint\ndata: /messages?sessionId=x\n\n'),
      [
        { event: 'message', data: '{"a":1}', id: '3_17', retry: undefined },
        { event: 'endpoint', data: '/messages?sessionId=x', id: undefined, retry: undefined },
      ],
    );
  });

  test('joins multi-line data and defaults the type to "message"', () => {
    assert.deepEqual(parse('data: {\ndata:   "x": 1\ndata: }\n\n'), [
      { event: 'message', data: '{\n  "x": 1\n}', id: undefined, retry: undefined },
    ]);
  });

  test('reassembles events split anywhere across chunks, including inside UTF-8 sequences', () => {
    const text = 'id: 1\ndata: {"t":"héllo ✓"}\n\n';
    const bytes = new TextEncoder().encode(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const events = parse(bytes.slice(0, cut), bytes.slice(cut));
      assert.deepEqual(
        events,
        [{ event: 'message', data: '{"t":"héllo ✓"}', id: '1', retry: undefined }],
        `cut at ${cut}`,
      );
    }
  });

  test('accepts CRLF, CR and LF line endings, even with CRLF split between chunks', () => {
    const expected = [{ event: 'message', data: 'a', id: '1', retry: undefined }];
    assert.deepEqual(parse('id: 1\r\ndata: a\r\n\r\n'), expected);
    assert.deepEqual(parse('id: 1\rdata: a\r\r'), expected);
    assert.deepEqual(parse('id: 1\r', '\ndata: a\r', '\n\r', '\n'), expected);
  });

  test('skips comments (keep-alives), a leading BOM and unknown fields; reads retry', () => {
    assert.deepEqual(parse('\uFEFF: keep-alive\n\nretry: 1000\n\nfoo: bar\nid: 9\ndata: x\n\n'), [
      { event: 'message', data: '', id: undefined, retry: 1000 },
      { event: 'message', data: 'x', id: '9', retry: undefined },
    ]);
  });

  test('dispatches priming events (an id and empty data) and keeps the last event id', () => {
    const events: SseEvent[] = [];
    const parser = new SseParser((e) => events.push(e));
    parser.push('id: 4_10\ndata: \n\n');
    assert.deepEqual(events, [{ event: 'message', data: '', id: '4_10', retry: undefined }]);
    assert.equal(parser.lastEventId, '4_10');
  });

  test('field without a colon, value without the optional space, ids with NUL ignored', () => {
    assert.deepEqual(parse('data\ndata:x\n\n'), [
      { event: 'message', data: '\nx', id: undefined, retry: undefined },
    ]);
    assert.deepEqual(parse('id: a\0b\ndata: y\n\n'), [
      { event: 'message', data: 'y', id: undefined, retry: undefined },
    ]);
  });

  test('an event cut off by the end of the stream is not dispatched', () => {
    assert.deepEqual(parse('id: 1\ndata: complete\n\nid: 2\ndata: partial'), [
      { event: 'message', data: 'complete', id: '1', retry: undefined },
    ]);
  });
});
