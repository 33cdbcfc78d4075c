import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { describe, test } from 'node:test';
import type { ChannelListener, ClientChannel } from '../../session/client-channel';
import { GatewayMethod, WsChannel, type GatewaySocket, type WsChannelOwner } from './ws-channel';

/** Just enough of a ws WebSocket: records frames and close calls. */
class FakeWs extends EventEmitter {
  channel: WsChannel | undefined = undefined;
  sent: string[] = [];
  pings = 0;
  bufferedAmount = 0;
  closedWith: [number, string] | undefined;
  terminated = false;
  send(data: string): void {
    this.sent.push(data);
  }
  ping(): void {
    this.pings++;
  }
  close(code: number, reason: string): void {
    this.closedWith = [code, reason];
  }
  terminate(): void {
    this.terminated = true;
  }
}

class FakeSocket extends EventEmitter {
  writableNeedDrain = false;
}

class Recorder implements WsChannelOwner, ChannelListener {
  gone: Array<[number, boolean]> = [];
  drained = 0;
  closed = 0;
  frameIn(): void {}
  channelGone(_c: WsChannel, code: number, byPeer: boolean): void {
    this.gone.push([code, byPeer]);
  }
  connectionError(): void {}
  channelDrained(_c: ClientChannel): void {
    this.drained++;
  }
  channelClosed(_c: ClientChannel): void {
    this.closed++;
  }
}

function setup(highWater = 1000) {
  const ws = new FakeWs();
  const socket = new FakeSocket();
  const rec = new Recorder();
  const channel = new WsChannel(ws as unknown as GatewaySocket, socket as unknown as Duplex, rec, highWater);
  channel.listener = rec;
  return { ws, socket, rec, channel };
}

const parse = (s: string) => JSON.parse(s) as { method?: string; params?: { seq?: number } };

describe('WsChannel', () => {
  test('the first frame names the session; consecutive messages go out as the raw JSON only', () => {
    const { ws, channel } = setup();
    channel.hello('s1', 0, false);
    assert.equal(channel.send(1, 0, '{"a":1}'), true);
    assert.equal(channel.send(2, 3, '{"a":2}'), true);
    assert.deepEqual(parse(ws.sent[0]), {
      jsonrpc: '2.0',
      method: GatewayMethod.Session,
      params: { sessionId: 's1', seq: 0, resumed: false },
    });
    assert.deepEqual(ws.sent.slice(1), ['{"a":1}', '{"a":2}']);
  });

  test('a gap or a re-sent older message is preceded by a position notification', () => {
    const { ws, channel } = setup();
    channel.hello('s1', 4, true);
    channel.send(7, 0, 'm7');
    channel.send(2, 0, 'm2');
    channel.send(8, 0, 'm8');
    const positions = ws.sent.slice(1).map((s) => (s.startsWith('{') ? parse(s).params!.seq : s));
    assert.deepEqual(positions, [6, 'm7', 1, 'm2', 7, 'm8']);
  });

  test('a resume without a known position gets a position before its first message', () => {
    const { ws, channel } = setup();
    channel.hello('s1', undefined, true);
    assert.equal(parse(ws.sent[0]).params!.seq, undefined);
    channel.send(12, 0, 'm12');
    assert.equal(parse(ws.sent[1]).method, GatewayMethod.Position);
    assert.equal(parse(ws.sent[1]).params!.seq, 11);
    assert.equal(ws.sent[2], 'm12');
  });

  test('above the high-water mark send says stop; the socket drain reports channelDrained once', () => {
    const { ws, socket, rec, channel } = setup(1000);
    channel.hello('s1', 0, false);
    ws.bufferedAmount = 5000;
    socket.writableNeedDrain = true;
    assert.equal(channel.send(1, 0, 'x'), false);
    assert.equal(channel.send(2, 0, 'y'), false);
    assert.equal(socket.listenerCount('drain'), 1, 'one drain listener, not one per message');
    ws.bufferedAmount = 0;
    socket.emit('drain');
    assert.equal(rec.drained, 1);
    socket.emit('drain');
    assert.equal(rec.drained, 1);
  });

  test('when bytes wait inside ws (no socket drain coming) the heartbeat reports the drain', () => {
    const { ws, rec, channel } = setup(1000);
    channel.hello('s1', 0, false);
    ws.bufferedAmount = 5000;
    assert.equal(channel.send(1, 0, 'x'), false);
    ws.bufferedAmount = 10;
    channel.heartbeat();
    assert.equal(rec.drained, 1);
  });

  test('close maps the code and cuts the reason; sends after close are refused', () => {
    const { ws, channel } = setup();
    channel.close(409, 'x'.repeat(300));
    assert.equal(ws.closedWith![0], 4002);
    assert.ok(Buffer.byteLength(ws.closedWith![1]) <= 123);
    assert.equal(channel.closed, true);
    assert.equal(channel.send(1, 0, 'late'), false);
  });

  test('a peer that missed a ping is terminated on the next tick; a pong keeps it', () => {
    const { ws, channel } = setup();
    assert.equal(channel.heartbeat(), true);
    assert.equal(ws.pings, 1);
    ws.emit('pong');
    assert.equal(channel.heartbeat(), true);
    assert.equal(channel.heartbeat(), false);
    assert.equal(ws.terminated, true);
  });

  test('the close event reports to the owner and the session once, saying who closed', () => {
    const { ws, rec, channel } = setup();
    ws.emit('close', 1005, Buffer.alloc(0));
    ws.emit('close', 1005, Buffer.alloc(0));
    assert.deepEqual(rec.gone, [[1005, true]]);
    assert.equal(rec.closed, 1);
    assert.equal(channel.closed, true);

    const second = setup();
    second.channel.close(4001, 'idle');
    second.ws.emit('close', 4001, Buffer.alloc(0));
    assert.deepEqual(second.rec.gone, [[4001, false]]);
  });
});
