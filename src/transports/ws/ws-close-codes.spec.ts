import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { closeReason, toCloseCode, WsClose } from './ws-close-codes';

describe('WebSocket close codes', () => {
  test('session codes and valid RFC 6455 codes pass through', () => {
    for (const code of [1000, 1001, 1008, 1009, 1011, 1013, 4001, 4002, 4004, 4009, 4010, 3000]) {
      assert.equal(toCloseCode(code), code);
    }
  });

  test('HTTP-flavoured codes become the WebSocket code that says the same', () => {
    assert.equal(toCloseCode(404), WsClose.SessionNotFound);
    assert.equal(toCloseCode(410), WsClose.SessionNotFound);
    assert.equal(toCloseCode(409), WsClose.SessionMoved);
    assert.equal(toCloseCode(413), WsClose.TooLarge);
    assert.equal(toCloseCode(429), WsClose.TryAgainLater);
    assert.equal(toCloseCode(503), WsClose.TryAgainLater);
    assert.equal(toCloseCode(500), WsClose.Internal);
  });

  test('codes a close frame must not carry become 1008', () => {
    for (const code of [1004, 1005, 1006, 1015, 0, 999, 5000, 400]) assert.equal(toCloseCode(code), 1008);
  });

  test('reasons are cut to 123 bytes of UTF-8 without splitting a character', () => {
    assert.equal(closeReason('short'), 'short');
    const long = closeReason('é'.repeat(100));
    assert.ok(Buffer.byteLength(long) <= 123);
    assert.ok(long.endsWith('...'));
    assert.ok(!long.includes('\uFFFD'));
    const emoji = closeReason('😀'.repeat(60));
    assert.ok(Buffer.byteLength(emoji) <= 123);
    assert.equal(Buffer.from(emoji).toString(), emoji, 'no lone surrogate');
  });
});
