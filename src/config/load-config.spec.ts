import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, DEMO_SERVICE, loadConfig } from './load-config';

describe('loadConfig', () => {
  test('defaults: loopback, port 3000, the embedded demo as the only service', () => {
    const config = loadConfig({});
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.port, 3000);
    assert.equal(config.defaultService, DEMO_SERVICE);
    assert.equal(config.services[DEMO_SERVICE].replicas[0].transport, 'embedded');
    assert.equal(config.tls, undefined);
  });

  test('routing settings: watched file, admin token, replica ids and routing defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-routing-config-'));
    const file = join(dir, 'gateway.yaml');
    writeFileSync(
      file,
      'services:\n  a:\n    replicas:\n      - { transport: sse, url: "http://127.0.0.1:1/sse" }\n',
    );
    const config = loadConfig({ GATEWAY_CONFIG: file, ADMIN_TOKEN: 'x'.repeat(16) });
    assert.deepEqual(config.configFile, { path: resolve(file), watch: true, pollIntervalMs: 2000 });
    assert.equal(config.admin.token, 'x'.repeat(16));
    assert.deepEqual(config.services.a.routing, { key: 'client_id', boundedLoads: false });
    assert.match(config.services.a.replicas[0].id, /^a-[0-9a-f]{8}$/);
    // Services passed in (tests, embedders): no file is watched.
    assert.equal(loadConfig({ GATEWAY_CONFIG: file }, { services: {} }).configFile, undefined);
    assert.equal(loadConfig({}).admin.token, undefined);
    assert.throws(() => loadConfig({ ADMIN_TOKEN: 'short' }), /ADMIN_TOKEN: use at least 16 characters/);
  });

  test('readiness checks REDIS_URL; HEALTH_REDIS_URL only as a deprecated fallback', () => {
    const cluster = 'redis://10.0.0.1:6379';
    const old = 'redis://10.0.0.2:6379';
    assert.equal(loadConfig({}).healthRedisUrl, undefined);
    assert.deepEqual(
      [
        loadConfig({ REDIS_URL: cluster }).healthRedisUrl,
        loadConfig({ REDIS_URL: cluster }).healthRedisUrlDeprecated,
      ],
      [cluster, false],
    );
    const both = loadConfig({ REDIS_URL: cluster, HEALTH_REDIS_URL: old });
    assert.deepEqual([both.healthRedisUrl, both.healthRedisUrlDeprecated], [cluster, false]);
    const alias = loadConfig({ HEALTH_REDIS_URL: old });
    assert.deepEqual([alias.healthRedisUrl, alias.healthRedisUrlDeprecated], [old, true]);
  });

  test('tracing: protobuf unless JSON is asked for, batch sizes bounded by the queue', () => {
    assert.equal(loadConfig({}).tracing, undefined);
    const t = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318/' }).tracing!;
    assert.deepEqual(t, {
      tracesUrl: 'http://127.0.0.1:4318/v1/traces',
      sampleRatio: 1,
      serviceName: 'mcp-gateway',
      protocol: 'http/protobuf',
      maxQueueSize: 8192,
      maxExportBatchSize: 1024,
      scheduledDelayMs: 1000,
    });
    const json = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_MAX_QUEUE_SIZE: '100',
    }).tracing!;
    assert.deepEqual([json.protocol, json.maxQueueSize, json.maxExportBatchSize], ['http/json', 100, 100]);
    const traces = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
    }).tracing!;
    assert.equal(traces.protocol, 'http/protobuf');
    assert.throws(
      () =>
        loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x:1', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' }),
      /OTEL_EXPORTER_OTLP_TRACES_PROTOCOL/,
    );
  });

  test('lists every bad value in one error', () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: 'seventy',
        LOG_LEVEL: 'loud',
        SESSION_IDLE_TIMEOUT_MS: '-5',
        TLS_CERT_FILE: '/nope.pem',
      });
    } catch (err) {
      error = err;
    }
    assert.ok(error instanceof ConfigError);
    const text = (error as ConfigError).message;
    for (const key of ['PORT', 'LOG_LEVEL', 'SESSION_IDLE_TIMEOUT_MS', 'TLS_CERT_FILE']) {
      assert.match(text, new RegExp(key), `mentions ${key}`);
    }
  });

  test('reads services from gateway.yaml and rejects bad replicas with their path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-config-'));
    const good = join(dir, 'good.yaml');
    writeFileSync(
      good,
      'defaultService: a\nservices:\n  a:\n    replicas:\n      - transport: streamable-http\n        url: http://127.0.0.1:9/mcp\n',
    );
    const config = loadConfig({ GATEWAY_CONFIG: good });
    assert.equal(config.defaultService, 'a');
    assert.equal(config.services.a.replicas[0].transport, 'streamable-http');

    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      'services:\n  a:\n    replicas:\n      - transport: carrier-pigeon\n  b:\n    replicas: []\n',
    );
    assert.throws(
      () => loadConfig({ GATEWAY_CONFIG: bad }),
      (err: Error) =>
        /services\.a\.replicas\.0\.transport/.test(err.message) && /services\.b\.replicas/.test(err.message),
    );
  });

  test('./gateway.yaml in the working directory is read only when the caller names it (the CLI does)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-cwd-'));
    writeFileSync(
      join(dir, 'gateway.yaml'),
      'services:\n  mine:\n    replicas:\n      - transport: streamable-http\n        url: http://127.0.0.1:9/mcp\n',
    );
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const embedded = loadConfig({});
      assert.deepEqual(Object.keys(embedded.services), [DEMO_SERVICE], 'tests and embedders get the demo');
      const cli = loadConfig({}, {}, 'gateway.yaml');
      assert.deepEqual(Object.keys(cli.services), ['mine'], 'the CLI entry reads ./gateway.yaml');
    } finally {
      process.chdir(cwd);
    }
  });

  test('a bad configuration stops the start with the list of problems and no stack trace', () => {
    const main = resolve(__dirname, '../main.js');
    const result = spawnSync(process.execPath, [main], {
      env: { PATH: process.env.PATH, PORT: 'x', MAX_BODY_BYTES: '1' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /Invalid gateway configuration/);
    assert.match(result.stderr, /PORT/);
    assert.match(result.stderr, /MAX_BODY_BYTES/);
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  });
});
