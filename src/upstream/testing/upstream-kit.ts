import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import * as path from 'node:path';
import type { JsonRpcId, JsonRpcMessage, JsonRpcRequest } from '../../../libs/protocol/src';
import type { UpstreamOptions } from '../upstream-options';
import type { UpstreamConnection, UpstreamSink } from '../upstream-connection';

/** Repo root, from dist/src/upstream/testing or src/upstream/testing. */
export const ROOT = path.resolve(
  __dirname,
  __dirname.includes(`${path.sep}dist${path.sep}`) ? '../../../..' : '../../..',
);
export const EVERYTHING = path.join(
  ROOT,
  'node_modules/@modelcontextprotocol/server-everything/dist/index.js',
);
export const LOOPBACK_ONLY = path.join(ROOT, 'test/helpers/loopback-only.cjs');

export const FAST_OPTIONS: UpstreamOptions = {
  connectTimeoutMs: 3000,
  retryMinMs: 50,
  retryMaxMs: 400,
  maxRestarts: 3,
};

export interface Received {
  message: JsonRpcMessage;
  raw: string | undefined;
  related: JsonRpcId | undefined;
}

/** An UpstreamSink that records everything and lets a test wait for a message. */
export class RecordingSink implements UpstreamSink {
  readonly received: Received[] = [];
  closedWith: Error | undefined | null = null;
  private waiters: Array<{ match: (r: Received) => boolean; resolve: (r: Received) => void }> = [];

  upstreamMessage(message: JsonRpcMessage, raw: string | undefined, related: JsonRpcId | undefined): void {
    const r: Received = { message, raw, related };
    this.received.push(r);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(r)) return true;
      w.resolve(r);
      return false;
    });
  }

  upstreamClosed(error: Error | undefined): void {
    this.closedWith = error;
  }

  waitFor(match: (r: Received) => boolean, timeoutMs = 15_000, what = 'message'): Promise<Received> {
    const found = this.received.find(match);
    if (found) return Promise.resolve(found);
    return new Promise<Received>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      const done = (r: Received) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.waiters.push({ match, resolve: done });
    });
  }

  response(id: JsonRpcId, timeoutMs?: number): Promise<Received> {
    return this.waitFor(
      (r) => (r.message as JsonRpcRequest).method === undefined && (r.message as { id?: unknown }).id === id,
      timeoutMs,
      `response ${String(id)}`,
    );
  }

  request(method: string, timeoutMs?: number): Promise<Received> {
    return this.waitFor(
      (r) =>
        (r.message as JsonRpcRequest).method === method && (r.message as { id?: unknown }).id !== undefined,
      timeoutMs,
      `request ${method}`,
    );
  }

  notifications(method: string): Received[] {
    return this.received.filter(
      (r) =>
        (r.message as JsonRpcRequest).method === method && (r.message as { id?: unknown }).id === undefined,
    );
  }
}

export function initializeRequest(id: JsonRpcId, protocolVersion = '2025-11-25'): JsonRpcRequest {
  return {
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: {
      protocolVersion,
      capabilities: { sampling: {} },
      clientInfo: { name: 'upstream-spec', version: '0.0.0' },
    },
  };
}

/** initialize → (response) → notifications/initialized, through the upstream. */
export async function handshake(up: UpstreamConnection, sink: RecordingSink, protocolVersion?: string) {
  up.send(initializeRequest('init-1', protocolVersion), undefined);
  const init = await sink.response('init-1');
  up.send({ jsonrpc: '2.0', method: 'notifications/initialized' }, undefined);
  return init;
}

export function callTool(
  up: UpstreamConnection,
  id: JsonRpcId,
  name: string,
  args: object,
  meta?: object,
): void {
  const params: Record<string, unknown> = { name, arguments: args };
  if (meta) params._meta = meta;
  const msg: JsonRpcRequest = { jsonrpc: '2.0', id, method: 'tools/call', params };
  // Exercise the raw path: the upstream must forward these bytes as they are.
  up.send(msg, JSON.stringify(msg));
}

export function resultText(r: Received): string {
  const result = (r.message as { result?: { content?: Array<{ text?: string }> } }).result;
  return (result?.content ?? []).map((c) => c.text ?? '').join('\n');
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts server-everything in HTTP mode on a loopback port; resolves when it answers. */
export async function startEverythingHttp(
  mode: 'streamableHttp' | 'sse',
  fixedPort?: number,
): Promise<{ child: ChildProcess; port: number; stop: () => Promise<void> }> {
  const port = fixedPort ?? (await freePort());
  const child = spawn(process.execPath, ['--require', LOOPBACK_ONLY, EVERYTHING, mode], {
    env: { PATH: process.env.PATH ?? '', PORT: String(port) },
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`, {
        method: 'HEAD',
        signal: AbortSignal.timeout(1000),
      });
      await res.body?.cancel();
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`server-everything (${mode}) did not start`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { child, port, stop };
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export { waitUntil } from '../../testing/wait';
