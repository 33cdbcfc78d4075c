/**
 * The attackers of the flood suite, in their own process so their event loop does not delay the
 * good client's: 127.0.0.2 opens connections as fast as it can (up to 500 in flight, each held
 * until the gateway closes it or the run ends), 127.0.0.3 floods initialize POSTs (32 loops).
 * argv[2]: JSON { url, durationMs }. Reports `{ type: 'flood-result', … }` and exits.
 */
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { ReadyMessage } from './ipc';

interface Args {
  url: string;
  durationMs: number;
}

export interface FloodWorkerResult {
  type: 'flood-result';
  connectionsOpened: number;
  /** Connections the gateway refused (503 on the request written) or closed. */
  connectionsRefused: number;
  initializes: number;
  /** HTTP status → count for the initialize flood. */
  initializeStatuses: Record<string, number>;
}

const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'attacker', version: '1' } },
});

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2]) as Args;
  const { hostname, port } = new URL(args.url);
  const stopAt = Date.now() + args.durationMs;
  const result: FloodWorkerResult = {
    type: 'flood-result',
    connectionsOpened: 0,
    connectionsRefused: 0,
    initializes: 0,
    initializeStatuses: {},
  };
  if (process.send) process.send({ type: 'ready', url: '' } satisfies ReadyMessage);

  const held = new Set<Socket>();
  const connector = new Promise<void>((done) => {
    const open = (): void => {
      while (held.size < 500 && Date.now() < stopAt) {
        result.connectionsOpened++;
        const s = connect({ host: hostname, port: Number(port), localAddress: '127.0.0.2' });
        held.add(s);
        s.on('error', () => undefined);
        // One request line per connection: a refused connection answers it with 503.
        s.once('connect', () => s.write(`GET /health HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`));
        s.once('data', (d: Buffer) => {
          if (d.toString('latin1', 0, 12).endsWith('503')) result.connectionsRefused++;
        });
        s.once('close', () => {
          held.delete(s);
          if (Date.now() < stopAt) setImmediate(open);
          else if (held.size === 0) done();
        });
      }
    };
    open();
    setTimeout(() => {
      for (const s of held) s.destroy();
      if (held.size === 0) done();
    }, args.durationMs).unref();
  });

  const initialize = (): Promise<number> =>
    new Promise((ok) => {
      const req = request(
        args.url + '/mcp',
        {
          method: 'POST',
          localAddress: '127.0.0.3',
          agent: false,
          headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        },
        (res) => {
          res.resume();
          ok(res.statusCode ?? 0);
        },
      );
      req.on('error', () => ok(0));
      req.end(INIT);
    });
  const requester = Promise.all(
    Array.from({ length: 32 }, async () => {
      while (Date.now() < stopAt) {
        const status = await initialize();
        result.initializes++;
        result.initializeStatuses[status] = (result.initializeStatuses[status] ?? 0) + 1;
      }
    }),
  );
  await Promise.all([connector, requester]);
  if (process.send) process.send(result, () => process.exit(0));
  else process.exit(0);
}

void main();
