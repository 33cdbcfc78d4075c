/**
 * The provisioned Grafana dashboard (docker/grafana/dashboards/mcp-gateway.json): it parses, has
 * the panels /dashboard has, and every query — and every alert rule in docker/prometheus/alerts.yml
 * — names only metrics the gateway exports. "Exported" is the gateway's own /metrics when it serves
 * one, else the list in docker/prometheus/gateway-metrics.txt (which must then match the scrape).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { startGateway, type RunningGateway } from './helpers/gateway';

/** Series Prometheus itself makes: scrape health and the alert state. */
const PROMETHEUS_SERIES = new Set(['up', 'ALERTS']);
const HISTOGRAM_SUFFIX = /_(bucket|sum|count)$/;

const listed = readFileSync('docker/prometheus/gateway-metrics.txt', 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

/** Metric names in a PromQL expression: identifiers outside label matchers, not functions or keywords. */
function metricsIn(expr: string): string[] {
  const withoutMatchers = expr.replace(/\{[^}]*\}/g, '{}').replace(/"[^"]*"/g, '""');
  const names: string[] = [];
  for (const m of withoutMatchers.matchAll(
    /\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\(|\s+(?:by|without)\s*\()?/g,
  )) {
    if (m[2]) continue; // a function or an aggregation (sum(…), sum by (…) (…))
    const id = m[1];
    if (/^(by|without|on|ignoring|group_left|group_right|and|or|unless|bool|offset|le|inf|nan)$/i.test(id))
      continue;
    if (/^\d/.test(id)) continue;
    names.push(id);
  }
  const grouping = new Set<string>();
  for (const g of withoutMatchers.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)) {
    for (const label of g[1].split(',')) grouping.add(label.trim());
  }
  return names.filter((n) => !grouping.has(n) && !/^[smhdwy]$|^\d+[smhdwy]$/.test(n));
}

describe('Grafana dashboard and alert rules name exported metrics', () => {
  let gw: RunningGateway;
  let exported: Set<string>;
  let source: string;

  before(async () => {
    gw = await startGateway();
    const res = await fetch(`${gw.url}/metrics`);
    if (res.status === 200) {
      const text = await res.text();
      exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
      source = 'the gateway’s /metrics';
      const missing = listed.filter((n) => !exported.has(n));
      assert.deepEqual(
        missing,
        [],
        'docker/prometheus/gateway-metrics.txt lists only metrics /metrics exports',
      );
    } else {
      assert.equal(res.status, 404, 'no /metrics yet: the list stands in for it');
      await res.arrayBuffer();
      exported = new Set(listed);
      source = 'docker/prometheus/gateway-metrics.txt';
    }
  });
  after(() => gw?.close());

  const known = (name: string) =>
    PROMETHEUS_SERIES.has(name) || exported.has(name) || exported.has(name.replace(HISTOGRAM_SUFFIX, ''));

  test('every panel of /dashboard is there, each with queries naming exported metrics', () => {
    const dashboard = JSON.parse(readFileSync('docker/grafana/dashboards/mcp-gateway.json', 'utf8'));
    const titles: string[] = dashboard.panels.map((p: { title: string }) => p.title);
    for (const required of [
      'Connections by transport',
      'Message throughput',
      'Latency p50 / p90 / p99',
      'Error rates',
      'Circuit breaker status',
      'Pool utilisation',
      'Queue depth',
      'VSM variety flow',
      'Active alerts',
      'Replica health',
    ]) {
      assert.ok(titles.includes(required), `panel "${required}"`);
    }
    for (const panel of dashboard.panels) {
      assert.ok(panel.targets.length > 0, `${panel.title} has queries`);
      for (const target of panel.targets) {
        const names = metricsIn(target.expr);
        assert.ok(names.length > 0, `${panel.title}: ${target.expr} names a metric`);
        for (const name of names) assert.ok(known(name), `${panel.title}: ${name} is not in ${source}`);
      }
    }
  });

  test('every alert rule names exported metrics', () => {
    const rules = parse(readFileSync('docker/prometheus/alerts.yml', 'utf8')).groups.flatMap(
      (g: { rules: unknown[] }) => g.rules,
    ) as Array<{ alert: string; expr: string }>;
    assert.deepEqual(
      rules.map((r) => r.alert),
      ['PoolExhaustion', 'HighErrorRate', 'TransportFailovers', 'LatencyP99High', 'MemoryPressure'],
    );
    for (const rule of rules) {
      const names = metricsIn(rule.expr);
      assert.ok(names.length > 0, rule.alert);
      for (const name of names) assert.ok(known(name), `${rule.alert}: ${name} is not in ${source}`);
    }
  });

  test('the metric-name reader finds metrics, not labels or functions', () => {
    assert.deepEqual(
      metricsIn('histogram_quantile(0.99, sum by (le, replica) (rate(x_bucket{instance=~"$i"}[5m]))) > 0.5'),
      ['x_bucket'],
    );
    assert.deepEqual(metricsIn('a / on(instance) b and c >= 20'), ['a', 'b', 'c']);
  });
});
