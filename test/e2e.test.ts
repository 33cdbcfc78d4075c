/**
 * One end-to-end suite, run with the official SDK Client over every client transport
 * against every kind of upstream: the embedded demo, and server-everything over stdio, over
 * Streamable HTTP, over legacy HTTP+SSE, and over WebSocket (a second gateway in front of it,
 * reached at its /ws endpoint, is the real MCP-over-WebSocket server).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { SessionService } from '../src/session/session.module';
import { CLIENT_TRANSPORTS, connectClient, SAMPLED_TEXT, type ClientTransportName } from './helpers/clients';
import { everythingStdioReplica, startEverythingHttp, type RunningEverything } from './helpers/everything';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { assertNoLeaks, resourceCounts } from './fuzz/fuzz-kit';
import { waitForNoChildren } from './helpers/leaks';

interface UpstreamProfile {
  name: string;
  /** Named service the client connects to (undefined: the default service). */
  service?: string;
  start(): Promise<{ services?: Record<string, any>; stop(): Promise<void>; pid?: number }>;
  echoTool: string;
  echoArgs(text: string): Record<string, string>;
  longTool: { name: string; args: Record<string, unknown> };
  samplingTool: { name: string; args: Record<string, unknown> };
  resourceUri: (client: Client) => Promise<string>;
  prompt: { name: string; args?: Record<string, string> };
  /** Makes the upstream send a logging notification. */
  triggerLog(client: Client): Promise<void>;
}

const demo: UpstreamProfile = {
  name: 'embedded demo',
  start: async () => ({ stop: async () => undefined }),
  echoTool: 'echo',
  echoArgs: (text) => ({ text }),
  longTool: { name: 'long_task', args: { duration: 0.4, steps: 4 } },
  samplingTool: { name: 'ask_llm', args: { question: 'What is a gateway?' } },
  resourceUri: async () => 'demo://readme',
  prompt: { name: 'summarize', args: { text: 'The gateway forwards MCP messages.' } },
  triggerLog: async (client) => {
    await client.callTool({ name: 'long_task', arguments: { duration: 0.05, steps: 1 } });
  },
};

const everythingCommon = {
  echoTool: 'echo',
  echoArgs: (message: string) => ({ message }),
  longTool: { name: 'trigger-long-running-operation', args: { duration: 1, steps: 4 } },
  samplingTool: { name: 'trigger-sampling-request', args: { prompt: 'What is a gateway?', maxTokens: 20 } },
  resourceUri: async (client: Client) => {
    const list = await client.listResources();
    assert.ok(list.resources.length > 0, 'server-everything lists resources');
    return list.resources[0].uri;
  },
  prompt: { name: 'simple-prompt' },
  triggerLog: async (client: Client) => {
    await client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
  },
};

const everythingStdio: UpstreamProfile = {
  name: 'server-everything over stdio',
  service: 'everything',
  start: async () => ({
    services: { everything: { replicas: [everythingStdioReplica()] } },
    stop: async () => undefined,
  }),
  ...everythingCommon,
};

const everythingHttp: UpstreamProfile = {
  name: 'server-everything over Streamable HTTP',
  service: 'everything-http',
  start: async () => {
    const server: RunningEverything = await startEverythingHttp('streamableHttp');
    return {
      services: { 'everything-http': { replicas: [{ transport: 'streamable-http', url: server.url }] } },
      stop: () => server.stop(),
      pid: server.child.pid,
    };
  },
  ...everythingCommon,
};

const everythingSse: UpstreamProfile = {
  name: 'server-everything over legacy HTTP+SSE',
  service: 'everything-sse',
  start: async () => {
    const server: RunningEverything = await startEverythingHttp('sse');
    return {
      services: { 'everything-sse': { replicas: [{ transport: 'sse', url: server.url }] } },
      stop: () => server.stop(),
      pid: server.child.pid,
    };
  },
  ...everythingCommon,
};

const everythingWs: UpstreamProfile = {
  name: 'server-everything over WebSocket',
  service: 'everything-ws',
  start: async () => {
    const server: RunningEverything = await startEverythingHttp('streamableHttp');
    const inner = await startGateway({
      services: { everything: { replicas: [{ transport: 'streamable-http', url: server.url }] } },
    });
    const url = new URL('/ws/everything', inner.url);
    url.protocol = 'ws:';
    return {
      services: { 'everything-ws': { replicas: [{ transport: 'ws', url: url.href }] } },
      stop: async () => {
        await inner.close();
        await server.stop();
      },
      pid: server.child.pid,
    };
  },
  ...everythingCommon,
};

// Taken before any gateway or upstream starts, for the leak check at the end of the file.
const beforeSuite = resourceCounts();

for (const upstream of [demo, everythingStdio, everythingHttp, everythingSse, everythingWs]) {
  describe(`through the gateway to the ${upstream.name}`, () => {
    let gw: RunningGateway;
    let stopUpstream: () => Promise<void>;
    let upstreamPid: number | undefined;

    before(async () => {
      const started = await upstream.start();
      stopUpstream = started.stop;
      upstreamPid = started.pid;
      gw = await startGateway(started.services ? { services: started.services } : {});
    });

    after(async () => {
      // Clients rarely send DELETE: the idle sweep must reap their sessions and upstreams.
      // Connections the clients closed take a moment to be noticed on the server side.
      const sessions = gw.gateway.app.get(SessionService);
      const deadline = Date.now() + 3000;
      while (sessions.size > 0 && Date.now() < deadline) {
        sessions.sweep(Date.now() + 24 * 3600 * 1000);
        if (sessions.size > 0) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(sessions.size, 0, 'no session left behind');
      await gw.close();
      assert.deepEqual(
        await waitForNoChildren(upstreamPid ? [upstreamPid] : []),
        [],
        'no child process left behind',
      );
      await stopUpstream();
    });

    for (const transport of CLIENT_TRANSPORTS) {
      describe(`over ${transport}`, () => {
        let client: Client;

        before(async () => {
          ({ client } = await connectClient(gw.url, transport as ClientTransportName, upstream.service));
        });

        after(async () => {
          await client.close();
        });

        test('tools/list lists the upstream tools', async () => {
          const { tools } = await client.listTools();
          const names = tools.map((t) => t.name);
          assert.ok(names.includes(upstream.echoTool), `tools: ${names.join(', ')}`);
          assert.ok(names.includes(upstream.longTool.name));
        });

        test('tools/call returns the upstream result', async () => {
          const result = await client.callTool({
            name: upstream.echoTool,
            arguments: upstream.echoArgs('hello gateway'),
          });
          const text = (result.content as Array<{ type: string; text?: string }>)[0].text ?? '';
          assert.match(text, /hello gateway/);
        });

        test('resources/read returns the resource contents', async () => {
          const uri = await upstream.resourceUri(client);
          const result = await client.readResource({ uri });
          assert.equal(result.contents[0].uri, uri);
          const c = result.contents[0] as { text?: string; blob?: string };
          assert.ok((c.text ?? c.blob ?? '').length > 0);
        });

        test('prompts/get returns the prompt messages', async () => {
          const result = await client.getPrompt({
            name: upstream.prompt.name,
            arguments: upstream.prompt.args,
          });
          assert.ok(result.messages.length > 0);
        });

        test('progress notifications of a long-running tool arrive before its result', async () => {
          const progress: number[] = [];
          const result = await client.callTool(
            { name: upstream.longTool.name, arguments: upstream.longTool.args },
            undefined,
            { onprogress: (p) => progress.push(p.progress), timeout: 20_000 },
          );
          assert.ok(progress.length >= 3, `progress events: ${progress.join(',')}`);
          assert.deepEqual(
            progress,
            [...progress].sort((a, b) => a - b),
          );
          assert.ok((result.content as unknown[]).length > 0);
        });

        test('a sampling request from the upstream is answered by the client', async () => {
          const result = await client.callTool(
            { name: upstream.samplingTool.name, arguments: upstream.samplingTool.args },
            undefined,
            { timeout: 20_000 },
          );
          assert.match(JSON.stringify(result.content), new RegExp(SAMPLED_TEXT));
        });

        test('logging notifications reach the client at the level it set', async () => {
          const logs: unknown[] = [];
          client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
            logs.push(n.params);
          });
          await client.setLoggingLevel('debug');
          await upstream.triggerLog(client);
          const deadline = Date.now() + 10_000;
          while (logs.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
          assert.ok(logs.length > 0, 'a logging notification arrived');
          if (upstream !== demo) await upstream.triggerLog(client); // server-everything: toggle it off again
        });

        test('cancelling a request stops it and the session keeps working', async () => {
          const controller = new AbortController();
          const started = Date.now();
          await assert.rejects(
            client.callTool({ name: upstream.longTool.name, arguments: upstream.longTool.args }, undefined, {
              signal: controller.signal,
              onprogress: () => controller.abort('test cancels'),
              timeout: 20_000,
            }),
          );
          assert.ok(Date.now() - started < 5_000, 'the cancelled call returned promptly');
          const sessions = gw.gateway.app.get(SessionService);
          const deadline = Date.now() + 3_000;
          let waiting = Infinity;
          while (Date.now() < deadline) {
            waiting = [...sessions.all()].reduce((n, s) => n + s.inFlightCount, 0);
            if (waiting === 0) break;
            await new Promise((r) => setTimeout(r, 50));
          }
          assert.equal(waiting, 0, 'the gateway no longer waits for the cancelled request');
          const again = await client.callTool({
            name: upstream.echoTool,
            arguments: upstream.echoArgs('still here'),
          });
          assert.match(JSON.stringify(again.content), /still here/);
        });
      });
    }
  });
}

// Runs after every suite above (and their after hooks): what the whole run started is gone.
describe('after the whole suite', () => {
  test('no session, child process, socket or timer is left', async () => {
    await assertNoLeaks(undefined, beforeSuite, 'end of the e2e suite');
  });
});
