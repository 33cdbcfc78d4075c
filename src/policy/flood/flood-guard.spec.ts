import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import type { ClientChannel } from '../../session/client-channel';
import { TrustedProxies } from '../../core/trusted-proxies';
import type { FloodLimits } from '../../core/limits';
import { FloodGuard, FloodRefusedError, socketRefusal } from './flood-guard';

const OFF: FloodLimits = {
  maxConnections: 0,
  maxConnectionsPerIp: 0,
  connectRatePerIp: 0,
  connectBurstPerIp: 1,
  sessionRatePerIp: 0,
  sessionBurstPerIp: 1,
  maxSessionsPerClient: 0,
  initDeadlineMs: 0,
};

class FakeSocket extends EventEmitter {
  destroyed = false;
  constructor(readonly remoteAddress: string) {
    super();
  }
  setTimeout(): this {
    return this;
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

const socket = (ip: string) => new FakeSocket(ip) as unknown as Socket;

describe('FloodGuard', () => {
  test('global and per-IP connection caps; a closed connection frees its place', () => {
    const guard = new FloodGuard(
      { ...OFF, maxConnections: 3, maxConnectionsPerIp: 2 },
      new TrustedProxies([]),
    );
    const a1 = socket('10.0.0.1');
    guard.connected(a1);
    guard.connected(socket('::ffff:10.0.0.1'));
    const a3 = socket('10.0.0.1');
    guard.connected(a3);
    assert.equal(socketRefusal(a3)?.reason, 'connections_per_ip');
    assert.equal(guard.connectionsFrom('10.0.0.1'), 2);
    guard.connected(socket('10.0.0.2'));
    const over = socket('10.0.0.3');
    guard.connected(over);
    assert.equal(socketRefusal(over)?.reason, 'connections');
    assert.equal(socketRefusal(over)?.retryAfterMs, 1000);
    assert.equal(guard.connections, 3);
    a1.destroy();
    assert.equal(guard.connections, 2);
    assert.equal(guard.connectionsFrom('10.0.0.1'), 1);
    assert.deepEqual(Object.fromEntries(guard.refusals), { connections_per_ip: 1, connections: 1 });
  });

  test('a trusted proxy is held only by the global cap', () => {
    const guard = new FloodGuard({ ...OFF, maxConnectionsPerIp: 1 }, new TrustedProxies(['10.9.0.0/16']));
    for (let i = 0; i < 5; i++) {
      const s = socket('10.9.0.1');
      guard.connected(s);
      assert.equal(socketRefusal(s), undefined);
    }
    assert.equal(guard.connections, 5);
  });

  test('per-IP connect rate: past the burst a connection is refused with the wait until the next token', () => {
    const guard = new FloodGuard(
      { ...OFF, connectRatePerIp: 2, connectBurstPerIp: 2 },
      new TrustedProxies([]),
    );
    guard.connected(socket('10.0.0.1'), 0);
    guard.connected(socket('10.0.0.1'), 0);
    const third = socket('10.0.0.1');
    guard.connected(third, 0);
    assert.equal(socketRefusal(third)?.reason, 'connect_rate');
    assert.equal(socketRefusal(third)?.retryAfterMs, 500);
  });

  test('sessions per client, anonymous exempt; per-IP session rate through X-Forwarded-For from a trusted proxy', () => {
    const guard = new FloodGuard(
      { ...OFF, maxSessionsPerClient: 2, sessionRatePerIp: 1, sessionBurstPerIp: 1 },
      new TrustedProxies(['127.0.0.1']),
    );
    guard.opened('c');
    guard.opened('c');
    assert.throws(
      () => guard.admit('c', undefined, undefined),
      (e: FloodRefusedError) => e.reason === 'sessions_per_client',
    );
    guard.closed('c');
    guard.admit('c', undefined, undefined);
    for (let i = 0; i < 5; i++) guard.opened('anonymous');
    guard.admit('anonymous', undefined, undefined);
    // The proxy's XFF names two clients: each has its own bucket.
    guard.admit('x', '127.0.0.1', { 'x-forwarded-for': '203.0.113.1' });
    guard.admit('x', '127.0.0.1', { 'x-forwarded-for': '203.0.113.2' });
    assert.throws(
      () => guard.admit('x', '127.0.0.1', { 'x-forwarded-for': '203.0.113.1' }),
      (e: FloodRefusedError) => e.reason === 'session_rate' && e.code === 'flood_session_rate',
    );
    // From an untrusted peer the header is ignored: the peer is the key.
    guard.admit('x', '10.0.0.5', { 'x-forwarded-for': '203.0.113.9' });
    assert.throws(() => guard.admit('x', '10.0.0.5', { 'x-forwarded-for': '203.0.113.10' }));
  });

  test('initialize deadline: closes 1008 and ends the session unless it initialized', () => {
    const guard = new FloodGuard({ ...OFF, initDeadlineMs: 1000 }, new TrustedProxies([]));
    const ended: string[] = [];
    guard.endSession = (_s, reason) => ended.push(reason);
    const closes: number[] = [];
    const channel = (): ClientChannel =>
      ({ closed: false, close: (code: number) => closes.push(code) }) as unknown as ClientChannel;
    const slow = { protocolVersion: undefined, closed: false };
    const good = { protocolVersion: undefined as string | undefined, closed: false };
    guard.watchInitialize(slow, channel(), 0);
    guard.watchInitialize(good, channel(), 0);
    guard.tick(500);
    assert.equal(guard.pendingInitializations, 2);
    good.protocolVersion = '2025-06-18';
    guard.tick(1000);
    assert.deepEqual(closes, [1008]);
    assert.equal(ended.length, 1);
    assert.equal(guard.pendingInitializations, 0);
    assert.equal(guard.refusals.get('init_deadline'), 1);
  });

  test('update changes caps live', () => {
    const guard = new FloodGuard({ ...OFF }, new TrustedProxies([]));
    guard.opened('c');
    guard.admit('c', undefined, undefined);
    guard.update({ maxSessionsPerClient: 1 });
    assert.throws(() => guard.admit('c', undefined, undefined));
  });
});
