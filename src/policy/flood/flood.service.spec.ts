import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadConfig } from '../../config/load-config';
import { parseCaps } from './flood.service';

describe('flood settings', () => {
  test('per-address limits are off on a loopback bind unless set, on elsewhere', () => {
    const local = loadConfig({ HOST: '127.0.0.1' }).flood;
    assert.deepEqual([local.maxConnectionsPerIp, local.connectRatePerIp, local.sessionRatePerIp], [0, 0, 0]);
    const exposed = loadConfig({ HOST: '0.0.0.0' }).flood;
    assert.deepEqual(
      [exposed.maxConnectionsPerIp, exposed.connectRatePerIp, exposed.sessionRatePerIp],
      [1000, 100, 20],
    );
    const explicit = loadConfig({ HOST: '127.0.0.1', MAX_CONNECTIONS_PER_IP: '7' }).flood;
    assert.equal(explicit.maxConnectionsPerIp, 7);
    assert.equal(exposed.maxConnections, 50_000);
    assert.equal(exposed.maxSessionsPerClient, 100);
    assert.equal(exposed.headersTimeoutMs, 10_000);
    assert.equal(exposed.requestTimeoutMs, 30_000);
  });

  test('the request timeout is never below the headers timeout', () => {
    const f = loadConfig({ HEADERS_TIMEOUT_MS: '20000', HTTP_REQUEST_TIMEOUT_MS: '5000' }).flood;
    assert.equal(f.requestTimeoutMs, 20_000);
  });

  test('S5 caps: known keys with non-negative numbers apply; the rest is listed', () => {
    const { changes, problems } = parseCaps({
      maxSessionsPerClient: 5,
      maxConnections: -1,
      connectBurstPerIp: 0,
      bogus: 1,
    });
    assert.deepEqual(changes, { maxSessionsPerClient: 5 });
    assert.equal(problems.length, 3);
    assert.deepEqual(parseCaps('x').problems, ['caps must be an object']);
  });
});
