import assert from 'node:assert/strict';
import { after, describe, mock, test } from 'node:test';
import { Logger } from '@nestjs/common';
import type { JsonRpcRequest } from '../../libs/protocol/src';
import {
  callTool,
  FAST_OPTIONS,
  handshake,
  RecordingSink,
  resultText,
  waitUntil,
} from './testing/upstream-kit';
import { DEMO_SERVER_NAME } from './demo-server';
import { EmbeddedUpstream } from './embedded.upstream';

Logger.overrideLogger(['error']);

const opened: EmbeddedUpstream[] = [];
function open() {
  const up = new EmbeddedUpstream({ transport: 'embedded', server: 'demo', weight: 1 }, FAST_OPTIONS);
  const sink = new RecordingSink();
  up.sink = sink;
  opened.push(up);
  return { up, sink };
}

after(async () => {
  await Promise.all(opened.map((u) => u.close()));
});

describe('EmbeddedUpstream (demo server)', () => {
  test('handshake, lists, echo, current_time, resource, prompt', async () => {
    const { up, sink } = open();
    // Sent before start(): queued until the in-memory pair is connected.
    up.send(
      {
        jsonrpc: '2.0',
        id: 'init-1',
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '0' } },
      },
      undefined,
    );
    await up.start();
    const init = await sink.response('init-1');
    assert.equal(init.raw, undefined, 'in-process messages carry no raw text');
    const result = (
      init.message as { result: { serverInfo: { name: string }; capabilities: Record<string, unknown> } }
    ).result;
    assert.equal(result.serverInfo.name, DEMO_SERVER_NAME);
    assert.ok(result.capabilities.logging && result.capabilities.tools);
    up.send({ jsonrpc: '2.0', method: 'notifications/initialized' }, undefined);

    up.send({ jsonrpc: '2.0', id: 1, method: 'tools/list' }, undefined);
    const tools = ((await sink.response(1)).message as { result: { tools: Array<{ name: string }> } }).result
      .tools;
    assert.deepEqual(tools.map((t) => t.name).sort(), ['ask_llm', 'current_time', 'echo', 'long_task']);

    callTool(up, 2, 'echo', { text: 'embedded' });
    assert.equal(resultText(await sink.response(2)), 'embedded');

    callTool(up, 3, 'current_time', { timezone: 'Europe/Paris' });
    assert.match(resultText(await sink.response(3)), /^\d{4}-\d\d-\d\dT.*Z \(Europe\/Paris: /);
    callTool(up, 4, 'current_time', { timezone: 'Not/AZone' });
    assert.equal(
      ((await sink.response(4)).message as { result: { isError?: boolean } }).result.isError,
      true,
    );

    up.send({ jsonrpc: '2.0', id: 5, method: 'resources/read', params: { uri: 'demo://readme' } }, undefined);
    const readme = ((await sink.response(5)).message as { result: { contents: Array<{ text: string }> } })
      .result;
    assert.match(readme.contents[0].text, /demo server/);

    up.send(
      {
        jsonrpc: '2.0',
        id: 6,
        method: 'prompts/get',
        params: { name: 'summarize', arguments: { text: 'abc' } },
      },
      undefined,
    );
    const prompt = (
      (await sink.response(6)).message as { result: { messages: Array<{ content: { text: string } }> } }
    ).result;
    assert.match(prompt.messages[0].content.text, /abc/);
  });

  test('long_task: progress and logs related to the request, cancellation', async (t) => {
    const { up, sink } = open();
    await up.start();
    await handshake(up, sink);
    up.send({ jsonrpc: '2.0', id: 'lvl', method: 'logging/setLevel', params: { level: 'info' } }, undefined);
    await sink.response('lvl');
    callTool(up, 10, 'long_task', { duration: 0.2, steps: 2 }, { progressToken: 'p10' });
    const done = await sink.response(10);
    assert.match(resultText(done), /finished: 2 steps/);
    const progress = sink.notifications('notifications/progress');
    assert.equal(progress.length, 2);
    for (const p of progress) assert.equal(p.related, 10);
    assert.equal(sink.notifications('notifications/message').length, 2);

    // The steps are timers: fake them, and move time until the call's first step (1 s) is logged,
    // so the call is running when it is cancelled.
    mock.timers.enable({ apis: ['setTimeout'] });
    t.after(() => mock.timers.reset());
    const logged = () => sink.notifications('notifications/message').length;
    callTool(up, 11, 'long_task', { duration: 10, steps: 10 });
    await waitUntil(
      () => {
        mock.timers.tick(100);
        return logged() > 2;
      },
      5000,
      'the first step to be logged',
      0,
    );
    assert.equal(up.inFlightCount, 1, 'the running call is awaited');
    const before = logged();
    up.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 11 } }, undefined);
    assert.equal(up.inFlightCount, 0, 'a cancelled call is no longer awaited');
    // The SDK does not answer a cancelled request; the task must stop (no more logs for it). The
    // server is in-process: a few turns of the event loop deliver the cancellation, and after the
    // next step's end they would deliver its log.
    const turns = async () => {
      for (let turn = 0; turn < 5; turn++) await new Promise((r) => setImmediate(r));
    };
    await turns();
    mock.timers.tick(1200);
    await turns();
    assert.equal(logged(), before, 'no step finished after cancellation');
  });

  test('ask_llm: the sampling request reaches the sink and the answer completes the call', async () => {
    const { up, sink } = open();
    await up.start();
    await handshake(up, sink);
    callTool(up, 'ask', 'ask_llm', { question: 'What is 2+2?' });
    const sampling = await sink.request('sampling/createMessage');
    assert.equal(sampling.related, 'ask');
    up.send(
      {
        jsonrpc: '2.0',
        id: (sampling.message as JsonRpcRequest).id,
        result: { role: 'assistant', content: { type: 'text', text: '4' }, model: 'tiny' },
      },
      undefined,
    );
    assert.equal(resultText(await sink.response('ask')), 'tiny: 4');
  });

  test('pause holds server messages until resume; close() ends it', async () => {
    const { up, sink } = open();
    await up.start();
    await handshake(up, sink);
    up.pause();
    callTool(up, 'p', 'echo', { text: 'held' });
    await waitUntil(() => up.inFlightCount === 0, 5000, 'the answer to come back (and be held)');
    assert.equal(
      sink.received.some((r) => (r.message as { id?: unknown }).id === 'p'),
      false,
    );
    up.resume();
    assert.equal(resultText(await sink.response('p')), 'held');
    await up.close();
    assert.equal(up.healthy(), false);
    up.send({ jsonrpc: '2.0', id: 'z', method: 'ping' }, undefined);
    assert.ok((await sink.response('z')).message);
  });
});
