import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CountRecord } from '../fixtures/counting-server';
import { freePort } from './everything';
import { childPids } from './leaks';

/** The compiled counting fixture (test/fixtures/counting-server.ts). */
export const COUNTING_SERVER = join(__dirname, '..', 'fixtures', 'counting-server.js');

export type CountingTransport = 'streamable-http' | 'ws' | 'stdio';

/** A scratch directory for the replicas' record files; remove() when done. */
export function recordDir(): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), 'gw-count-'));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * One replica of the counting fixture. Network replicas (Streamable HTTP, WebSocket) run as one
 * child the test starts, kills (SIGKILL) and restarts on the same port; a stdio replica is a
 * command the gateway spawns per upstream session, and kill() ends every process of it.
 */
export class CountingReplica {
  private child: ChildProcess | undefined = undefined;
  port = 0;

  constructor(
    readonly name: string,
    readonly transport: CountingTransport,
    readonly file: string,
  ) {}

  static async create(name: string, transport: CountingTransport, dir: string): Promise<CountingReplica> {
    const replica = new CountingReplica(name, transport, join(dir, `${name}.jsonl`));
    if (transport !== 'stdio') {
      replica.port = await freePort();
      await replica.start();
    }
    return replica;
  }

  /** The replica entry of gateway.yaml. */
  config() {
    const env = { COUNT_FILE: this.file, REPLICA_NAME: this.name };
    if (this.transport === 'stdio') {
      return {
        id: this.name,
        transport: 'stdio' as const,
        command: process.execPath,
        args: [COUNTING_SERVER, 'stdio'],
        env,
      };
    }
    const url =
      this.transport === 'ws' ? `ws://127.0.0.1:${this.port}/mcp` : `http://127.0.0.1:${this.port}/mcp`;
    return { id: this.name, transport: this.transport, url };
  }

  get up(): boolean {
    return this.transport === 'stdio' || this.child !== undefined;
  }

  /** Starts (or restarts) a network replica on its port and waits until it accepts connections. */
  async start(): Promise<void> {
    if (this.transport === 'stdio' || this.child) return;
    const child = spawn(
      process.execPath,
      [COUNTING_SERVER, this.transport === 'ws' ? 'ws' : 'http', String(this.port)],
      {
        env: { PATH: process.env.PATH ?? '', COUNT_FILE: this.file, REPLICA_NAME: this.name },
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
    this.child = child;
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    const deadline = Date.now() + 15_000;
    while (!(await portOpen(this.port))) {
      if (this.child !== child) throw new Error(`replica ${this.name} exited while starting`);
      if (Date.now() > deadline) throw new Error(`replica ${this.name} did not start`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGKILL: the network replica's process, or every live process of a stdio replica. */
  async kill(): Promise<void> {
    if (this.transport === 'stdio') {
      // Only processes that are children of this test process (the gateway runs in it): a pid
      // from the records that was reused by now belongs to someone else.
      const mine = new Set(childPids());
      for (const pid of this.pids()) if (mine.has(pid) && alive(pid)) process.kill(pid, 'SIGKILL');
      return;
    }
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  /** Processes this replica ever ran (from their start records). */
  pids(): number[] {
    return this.records()
      .filter((r) => r.started)
      .map((r) => r.pid);
  }

  /** Everything the replica's processes received so far. */
  records(): CountRecord[] {
    if (!existsSync(this.file)) return [];
    return readFileSync(this.file, 'utf8')
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as CountRecord);
  }

  /** Keys of the counting tools' calls this replica received. */
  keys(): string[] {
    return this.records()
      .filter((r) => r.key !== undefined)
      .map((r) => r.key!);
  }
}
