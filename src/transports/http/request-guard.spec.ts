import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hostCheckWarning, hostnameOf, isLoopbackHost, RequestGuard } from './request-guard';

describe('hostnameOf: Host parsed strictly as host [":" port]', () => {
  test('well-formed values give the host', () => {
    assert.equal(hostnameOf('localhost'), 'localhost');
    assert.equal(hostnameOf('127.0.0.1:8080'), '127.0.0.1');
    assert.equal(hostnameOf('[::1]:3000'), '[::1]');
    assert.equal(hostnameOf('mcp_gateway:3000'), 'mcp_gateway');
  });
  test('anything else is no host at all', () => {
    for (const bad of [
      '127.0.0.1:80@evil.com',
      '[::1].evil.com',
      'a:1:2',
      'a:',
      '[::1',
      '::1',
      'a b',
      'a/b',
      'h:99999x',
      'x.',
    ]) {
      assert.equal(hostnameOf(bad), undefined, bad);
    }
  });
});

describe('isLoopbackHost: IP literals and localhost only', () => {
  test('loopback', () => {
    for (const h of ['localhost', '127.0.0.1', '127.255.0.9', '[::1]', '::1', '[0:0:0:0:0:0:0:1]'])
      assert.ok(isLoopbackHost(h), h);
  });
  test('not loopback', () => {
    for (const h of [
      '127.attacker.example',
      '127.0.0.1.nip.io',
      'localhost.evil.com',
      '[::2]',
      '0.0.0.0',
      '128.0.0.1',
    ]) {
      assert.equal(isLoopbackHost(h), false, h);
    }
  });
});

describe('start-up warning for an unpinned public bind', () => {
  test('warns on a public bind without ALLOWED_HOSTS, and says what to set', () => {
    assert.match(hostCheckWarning({ host: '0.0.0.0', allowedHosts: [] }) ?? '', /ALLOWED_HOSTS/);
  });
  test('silent on loopback or with a host list', () => {
    assert.equal(hostCheckWarning({ host: '127.0.0.1', allowedHosts: [] }), undefined);
    assert.equal(hostCheckWarning({ host: '0.0.0.0', allowedHosts: ['mcp.example.com'] }), undefined);
  });
  test('a public bind without a list serves any well-formed Host but no malformed one', () => {
    const guard = new RequestGuard({ host: '0.0.0.0', allowedHosts: [], allowedOrigins: [] });
    assert.equal(guard.check({ host: 'anything.example:80' }), undefined);
    assert.equal(guard.check({ host: 'a:80@b' })?.status, 403);
  });
});
