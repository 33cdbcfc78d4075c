/** permessage-deflate on WebSocket connections: off by default, negotiated when configured. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { startGateway, type RunningGateway } from './helpers/gateway';

async function connect(base: string): Promise<{ ws: WebSocket; frames: any[] }> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws`, 'mcp', { perMessageDeflate: true });
  const frames: any[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  await new Promise<void>((ok, fail) => {
    ws.once('open', () => ok());
    ws.once('error', fail);
  });
  return { ws, frames };
}

async function call(ws: WebSocket, frames: any[], id: number, method: string, params: unknown): Promise<any> {
  ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
  const deadline = Date.now() + 5000;
  for (;;) {
    const found = frames.find((f) => f.id === id);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no answer to ${method}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const INIT_PARAMS = {
  protocolVersion: '2025-06-18',
  capabilities: {},
  clientInfo: { name: 'deflate', version: '1' },
};

for (const compression of [false, true]) {
  describe(`WebSocket with compression ${compression ? 'on' : 'off'}`, () => {
    let gw: RunningGateway;
    before(async () => {
      gw = await startGateway({ ws: { compression, compressionThresholdBytes: 1024 } });
    });
    after(() => gw.close());

    test(`permessage-deflate is ${compression ? '' : 'not '}negotiated and large messages round-trip`, async () => {
      const { ws, frames } = await connect(gw.url);
      assert.equal(ws.extensions.includes('permessage-deflate'), compression);
      await call(ws, frames, 1, 'initialize', INIT_PARAMS);
      ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
      const big = 'mcp-gateway '.repeat(5000);
      const answer = await call(ws, frames, 2, 'tools/call', { name: 'echo', arguments: { text: big } });
      assert.equal(answer.result.content[0].text, big);
      ws.close(1000);
    });
  });
}
