import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';

/** Where the installed @modelcontextprotocol/server-everything entry point is. */
export const EVERYTHING_ENTRY = require.resolve('@modelcontextprotocol/server-everything/dist/index.js', {
  paths: [process.cwd()],
});
export const LOOPBACK_PRELOAD = resolve(__dirname, '../../../test/helpers/loopback-only.cjs');

/** A stdio replica definition for gateway config: server-everything as a child process. */
export function everythingStdioReplica() {
  return { transport: 'stdio' as const, command: process.execPath, args: [EVERYTHING_ENTRY] };
}

export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => ok(port));
    });
  });
}

export interface RunningEverything {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts server-everything over HTTP (`streamableHttp` → /mcp, `sse` → /sse) on a free
 * loopback port and waits until it accepts connections.
 */
export async function startEverythingHttp(
  mode: 'streamableHttp' | 'sse',
  fixedPort?: number,
): Promise<RunningEverything> {
  // A fixed port brings a replica back where the gateway's configuration expects it.
  const port = fixedPort ?? (await freePort());
  const child = spawn(process.execPath, ['--require', LOOPBACK_PRELOAD, EVERYTHING_ENTRY, mode], {
    env: { PATH: process.env.PATH ?? '', PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = `http://127.0.0.1:${port}${mode === 'sse' ? '/sse' : '/mcp'}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server-everything exited: ${stderr}`);
    try {
      await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(500) });
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`server-everything did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    child,
    stop: () =>
      new Promise<void>((ok) => {
        if (child.exitCode !== null || child.signalCode !== null) return ok();
        child.once('exit', () => ok());
        child.kill('SIGTERM');
      }),
  };
}

export const repoRoot = join(__dirname, '../../..');
