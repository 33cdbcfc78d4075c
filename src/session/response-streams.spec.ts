import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EndReason, StreamEnd } from '../core/end-reason';
import type { ClientTransport } from '../core/transport-kind';
import type { ChannelListener, ClientChannel } from './client-channel';
import { ResponseStreams, STANDALONE_STREAM } from './response-streams';

class FakeChannel implements ClientChannel {
  listener: ChannelListener | undefined = undefined;
  closed = false;
  ended = false;
  closeCode: number | undefined = undefined;
  readonly bufferedBytes = 0;
  constructor(readonly kind: ClientTransport = 'streamable') {}
  send(): boolean {
    return true;
  }
  end(): void {
    this.ended = true;
    this.closed = true;
  }
  close(code: number): void {
    this.closed = true;
    this.closeCode = code;
  }
}

const owner: ChannelListener = { channelDrained() {}, channelClosed() {} };

describe('ResponseStreams', () => {
  test('a POST stream ends once sealed and every request on it is answered', () => {
    const streams = new ResponseStreams(owner);
    const post = new FakeChannel();
    const stream = streams.open(post);
    assert.equal(stream, 1, 'POST streams are numbered from 1 (0 is the standalone stream)');
    assert.equal(post.listener, owner, 'the channel reports to the session');
    streams.requestAdded(stream);
    streams.requestAdded(stream);
    streams.seal(stream);
    streams.requestDone(stream);
    assert.equal(post.ended, false, 'one answer is still due');
    streams.requestDone(stream);
    assert.equal(post.ended, true);
    assert.equal(post.listener, undefined);
    assert.equal(streams.channelFor(stream), undefined, 'a finished stream is forgotten');
    assert.equal(streams.open(new FakeChannel()), 2, 'numbers are never reused');
  });

  test('a primary connection carries every stream and releases the HTTP channels', () => {
    const streams = new ResponseStreams(owner);
    const post = new FakeChannel();
    const get = new FakeChannel();
    const stream = streams.open(post);
    streams.requestAdded(stream);
    streams.attachStandalone(get);
    const ws = new FakeChannel('ws');
    streams.attachPrimary(ws);
    assert.equal(streams.channelFor(stream), ws);
    assert.equal(streams.channelFor(STANDALONE_STREAM), ws);
    assert.equal(post.closeCode, StreamEnd.Replaced);
    assert.equal(get.closeCode, StreamEnd.Replaced);
    streams.handedOut(stream, 7);
    assert.equal(streams.standaloneSentThrough, 7, 'what a primary received counts as sent');

    streams.detachPrimary();
    assert.equal(ws.closeCode, EndReason.SessionMoved);
    assert.equal(streams.hasLiveChannel(), false);
    // The POST stream's bookkeeping stayed: a resume of it still finds its pending answer.
    const resumed = new FakeChannel();
    assert.equal(streams.resume(resumed, stream), false, 'an answer is still due on it');
    assert.equal(streams.channelFor(stream), resumed);
  });

  test('resuming a stream that has nothing more to come says so; the session ends it', () => {
    const streams = new ResponseStreams(owner);
    const first = new FakeChannel();
    const stream = streams.open(first);
    streams.seal(stream);
    assert.equal(first.ended, true);
    const again = new FakeChannel();
    assert.equal(streams.resume(again, stream), true);
    streams.endResumed(stream, again);
    assert.equal(again.ended, true);
    assert.equal(streams.resume(new FakeChannel(), STANDALONE_STREAM), false, 'the GET stream stays open');
  });

  test('a newer standalone channel replaces the old one; detaching leaves it open', () => {
    const streams = new ResponseStreams(owner);
    const old = new FakeChannel();
    streams.attachStandalone(old);
    const fresh = new FakeChannel();
    streams.attachStandalone(fresh);
    assert.equal(old.closeCode, StreamEnd.Replaced);
    assert.equal(streams.detachStandalone(old), false, 'only the attached one can be detached');
    assert.equal(streams.detachStandalone(fresh), true);
    assert.equal(fresh.closed, false);
    assert.equal(streams.hasLiveChannel(), false);
  });

  test('closeAll closes each channel once with the code and forgets every stream', () => {
    const streams = new ResponseStreams(owner);
    const post = new FakeChannel();
    const stream = streams.open(post);
    streams.requestAdded(stream);
    const ws = new FakeChannel('ws');
    streams.attachPrimary(ws);
    streams.closeAll(EndReason.SessionEnded, 'expired');
    assert.equal(ws.closeCode, EndReason.SessionEnded);
    assert.equal(streams.hasLiveChannel(), false);
    assert.equal(streams.channelFor(stream), undefined);
  });
});
