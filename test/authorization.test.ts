/**
 * Per-client authorization over the three client transports, with official SDK clients against
 * the embedded demo upstream: a denied tool, resource or prompt is refused (−32602, not forwarded)
 * and the list answers hide what the client may not use; allowed calls still work.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { GatewayMetrics } from '../src/telemetry/gateway-metrics.service';
import { ConfigReloadService } from '../src/ops/admin/config-reload.service';
import { CLIENT_TRANSPORTS } from './helpers/clients';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { connectAs } from './helpers/policy-clients';

async function refusedWith(promise: Promise<unknown>, code: number): Promise<McpError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof McpError, `expected an McpError, got ${String(err)}`);
    assert.equal(err.code, code);
    return err;
  }
  assert.fail('expected a refusal');
}

describe('per-client authorization', () => {
  let gw: RunningGateway;
  before(async () => {
    gw = await startGateway({
      clients: {
        restricted: {
          tools: { allow: ['echo', 'current_*'], deny: ['current_time'] },
          resources: { deny: ['demo://*'] },
          prompts: { allow: [] },
        },
      },
    });
  });
  after(() => gw.close());

  for (const transport of CLIENT_TRANSPORTS) {
    describe(transport, () => {
      test('a denied tool call is refused, lists are filtered, allowed calls work', async () => {
        const metrics = gw.gateway.app.get(GatewayMetrics);
        const deniedBefore = metrics.authorizationDenied[transport];
        const { client } = await connectAs(gw.url, transport, 'restricted');
        try {
          const tools = await client.listTools();
          assert.deepEqual(
            tools.tools.map((t) => t.name),
            ['echo'],
          );
          const ok = await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
          assert.ok(JSON.stringify(ok.content).includes('hi'));

          const err = await refusedWith(client.callTool({ name: 'current_time', arguments: {} }), -32602);
          assert.match(err.message, /Tool "current_time" is not allowed/);
          await refusedWith(client.callTool({ name: 'long_task', arguments: {} }), -32602);

          assert.deepEqual((await client.listResources()).resources, []);
          await refusedWith(client.readResource({ uri: 'demo://readme' }), -32602);
          assert.deepEqual((await client.listPrompts()).prompts, []);
          await refusedWith(client.getPrompt({ name: 'summarize', arguments: { text: 'x' } }), -32602);

          assert.equal(metrics.authorizationDenied[transport] - deniedBefore, 4);
          assert.ok(metrics.listEntriesFiltered > 0);
        } finally {
          await client.close();
        }
      });

      test('a client without rules sees and uses everything', async () => {
        const { client } = await connectAs(gw.url, transport, 'open-client');
        try {
          const names = (await client.listTools()).tools.map((t) => t.name);
          assert.ok(names.includes('current_time') && names.includes('long_task'), names.join(','));
          const time = await client.callTool({ name: 'current_time', arguments: {} });
          assert.equal(time.isError ?? false, false);
          assert.equal((await client.listResources()).resources.length, 1);
          assert.equal((await client.listPrompts()).prompts.length, 1);
        } finally {
          await client.close();
        }
      });
    });
  }
});

describe('per-client rules from gateway.yaml', () => {
  test('an edit of the clients section applies from the next request', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-clients-'));
    const file = join(dir, 'gateway.yaml');
    const services = 'services:\n  demo:\n    replicas:\n      - transport: embedded\n';
    writeFileSync(file, `${services}clients:\n  carol:\n    tools: { deny: ['echo'] }\n`);
    const gw = await startGateway({}, { GATEWAY_CONFIG: file, GATEWAY_CONFIG_WATCH: 'false' });
    const { client } = await connectAs(gw.url, 'ws', 'carol');
    try {
      await refusedWith(client.callTool({ name: 'echo', arguments: { text: 'x' } }), -32602);
      writeFileSync(file, `${services}clients:\n  carol:\n    tools: { deny: ['current_time'] }\n`);
      await gw.gateway.app.get(ConfigReloadService).reload();
      const ok = await client.callTool({ name: 'echo', arguments: { text: 'now allowed' } });
      assert.ok(JSON.stringify(ok.content).includes('now allowed'));
      await refusedWith(client.callTool({ name: 'current_time', arguments: {} }), -32602);
    } finally {
      await client.close();
      await gw.close();
    }
  });
});
