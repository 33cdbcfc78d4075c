import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Logger as Pino } from 'pino';
import { parseLogLevels } from '../../config/log-level-names';
import { ConfigError, loadConfig } from '../../config/load-config';
import { correlationIdFrom, traceIdOf } from './log-fields';
import { LogLevels } from './log-levels';

describe('tracing and log settings', () => {
  test('tracing is off without an endpoint; the base endpoint gets /v1/traces, the traces endpoint wins', () => {
    assert.equal(loadConfig({}).tracing, undefined);
    assert.deepEqual(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' }).tracing, {
      tracesUrl: 'http://c:4318/v1/traces',
      sampleRatio: 1,
      serviceName: 'mcp-gateway',
      protocol: 'http/protobuf',
      maxQueueSize: 8192,
      maxExportBatchSize: 1024,
      scheduledDelayMs: 1000,
    });
    const both = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:9/traces',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_SERVICE_NAME: 'edge',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      OTEL_BSP_MAX_QUEUE_SIZE: '100',
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '10',
      OTEL_BSP_SCHEDULE_DELAY: '50',
    });
    assert.deepEqual(both.tracing, {
      tracesUrl: 'http://t:9/traces',
      sampleRatio: 0.25,
      serviceName: 'edge',
      protocol: 'http/json',
      maxQueueSize: 100,
      maxExportBatchSize: 10,
      scheduledDelayMs: 50,
    });
  });

  test('bad values are refused together', () => {
    assert.throws(
      () => loadConfig({ OTEL_TRACES_SAMPLER_ARG: '2', LOG_LEVELS: 'Session=loud', LOG_FORMAT: 'xml' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /OTEL_TRACES_SAMPLER_ARG/.test(err.message) &&
        /LOG_LEVELS/.test(err.message) &&
        /LOG_FORMAT/.test(err.message),
    );
  });

  test('LOG_LEVELS pairs', () => {
    assert.deepEqual(parseLogLevels(' Session=debug, StreamableHttp=warn ,'), {
      Session: 'debug',
      StreamableHttp: 'warn',
    });
    assert.deepEqual(parseLogLevels(''), {});
    for (const bad of ['Session', '=debug', 'Session=loud', 'a=b=c'])
      assert.equal(parseLogLevels(bad), undefined, bad);
    assert.deepEqual(loadConfig({ LOG_LEVELS: 'Session=debug' }).logLevels, { Session: 'debug' });
  });
});

describe('LogLevels', () => {
  test('module thresholds follow changes in place; pino gets the lowest level any module needs', () => {
    const root = { level: 'info' } as unknown as Pino;
    LogLevels.attach(root);
    LogLevels.configure('warn', { Session: 'debug' });
    const session = LogLevels.module('Session');
    const other = LogLevels.module('Other');
    assert.deepEqual([session.value, other.value, root.level], [20, 40, 'debug']);
    assert.equal(LogLevels.enabled(20, 'Session'), true);
    assert.equal(LogLevels.enabled(30, 'Other'), false);
    assert.equal(LogLevels.enabled(40, undefined), true);
    LogLevels.configure('info', {});
    assert.deepEqual([session.value, other.value, root.level], [30, 30, 'info']);
    LogLevels.attach(undefined);
  });
});

describe('log fields', () => {
  test('a sane x-request-id (or x-correlation-id) is kept; anything else gets a fresh id', () => {
    assert.equal(correlationIdFrom({ 'x-request-id': 'abc-1.2' }), 'abc-1.2');
    assert.equal(correlationIdFrom({ 'x-correlation-id': 'c:9' }), 'c:9');
    const fresh = /^[\da-f]{8}-[\da-f]{4}-[\da-f]{4}-[\da-f]{4}-[\da-f]{12}$/;
    assert.match(correlationIdFrom(undefined), fresh);
    assert.match(correlationIdFrom({ 'x-request-id': 'x'.repeat(129) }), fresh);
    assert.match(correlationIdFrom({ 'x-request-id': 'a\nb' }), fresh);
  });

  test('traceIdOf reads a W3C traceparent, and refuses malformed or all-zero ones', () => {
    const id = '4bf92f3577b34da6a3ce929d0e0e4736';
    assert.equal(traceIdOf(`00-${id}-00f067aa0ba902b7-01`), id);
    assert.equal(traceIdOf(`00-${'0'.repeat(32)}-00f067aa0ba902b7-01`), undefined);
    assert.equal(traceIdOf('garbage'), undefined);
    assert.equal(traceIdOf(7), undefined);
  });
});
