import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfig } from '../../config/load-config';
import { ConfigReloadService } from './config-reload.service';
import { ReplicaStates } from '../../routing/replica-states';
import { Router } from '../../routing/router.service';

const dir = mkdtempSync(join(tmpdir(), 'config-reload-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const good = `services:
  svc:
    replicas:
      - { id: a, transport: streamable-http, url: "http://127.0.0.1:1/mcp" }
      - { id: b, transport: streamable-http, url: "http://127.0.0.1:2/mcp", weight: 3 }
`;

function setUp(name: string) {
  const path = join(dir, name);
  writeFileSync(path, good);
  const config = loadConfig({ GATEWAY_CONFIG: path, GATEWAY_CONFIG_WATCH: 'false' });
  const router = new Router(config, new ReplicaStates());
  const service = new ConfigReloadService(config, router);
  const lines: string[] = [];
  // The Nest logger is what an operator reads; capture what it is given.
  (service as unknown as { log: object }).log = {
    log: (m: string) => lines.push(`log ${m}`),
    warn: (m: string) => lines.push(`warn ${m}`),
    error: (m: string) => lines.push(`error ${m}`),
  };
  return { path, router, service, lines };
}

const replicas = (router: Router) => router.view()[0].replicas.map((r) => `${r.id}:${r.weight}:${r.state}`);

describe('ConfigReloadService', () => {
  test('a bad edit is refused in one log line that lists every problem; the last good config stays', async () => {
    const { path, router, service, lines } = setUp('bad.yaml');
    writeFileSync(
      path,
      `services:
  svc:
    mode: sharded
    replicas:
      - { id: a, transport: streamable-http, url: "not a url", weight: 0 }
  other:
    replicas: []
`,
    );
    await service.reload();
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(
      lines[0],
      /^error refused the edit of gateway\.yaml, the last good configuration stays \(5 problems\)/,
    );
    for (const where of [
      'svc.mode',
      'svc.replicas.0.url',
      'svc.replicas.0.weight',
      'other.replicas',
      'services.svc.replicas.0.url',
    ]) {
      assert.ok(lines[0].includes(where), `${where} in ${lines[0]}`);
    }
    assert.equal(lines[0].includes('\n'), false);
    assert.deepEqual(replicas(router), ['a:1:active', 'b:3:active']);
    assert.equal(service.fileStatus().refused?.problems.length, 5);
  });

  test('a YAML syntax error is one problem on the same line', async () => {
    const { path, router, service, lines } = setUp('syntax.yaml');
    writeFileSync(path, 'services:\n  svc: [unclosed\n');
    await service.reload();
    assert.equal(lines.length, 1);
    assert.match(lines[0], /\(1 problem\)/);
    assert.deepEqual(replicas(router), ['a:1:active', 'b:3:active']);
  });

  test('a good edit is applied once and logged with what changed; the same content again is no edit', async () => {
    const { path, router, service, lines } = setUp('good.yaml');
    writeFileSync(
      path,
      good.replace('weight: 3', 'weight: 2') +
        '      - { id: c, transport: sse, url: "http://127.0.0.1:3/sse", draining: true }\n',
    );
    await service.reload();
    await service.reload();
    assert.deepEqual(replicas(router), ['a:1:active', 'b:2:active', 'c:1:draining']);
    assert.deepEqual(lines, ['log applied ' + path + ': replicas added c; replicas changed b']);
  });
});
