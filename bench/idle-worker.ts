/**
 * Idle-connection client, forked several times per idle scenario (e.g. 4 × 2,500) so that
 * 10,000 client sockets do not sit in one process and no worker is near its fd limit.
 *
 * - WebSocket: upgrade on /ws with subprotocol `mcp`; open once the gateway's
 *   `notifications/gateway/session` frame has arrived. Closed with 1000 at the end (which
 *   ends the gateway session).
 * - Legacy SSE: a raw `GET /sse` on its own socket; open once the `endpoint` event has
 *   arrived. Closed by destroying the socket.
 *
 * Then nothing is sent: the connections idle until the orchestrator says `idle-close`
 * (after measuring the gateway). For the compression scenario it may first say `idle-warm`:
 * every WebSocket connection then initializes, makes one tools/call (a large result), and
 * acknowledges it, so the gateway's outbox does not keep the result and what stays behind is
 * the connection's compression state.
 *
 * Protocol (IPC): IdleJob → IdleReport 'idle-established'; IdleCommand 'idle-warm' →
 * 'idle-warmed'; IdleCommand 'idle-close' → 'idle-closed', then the worker exits.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { IdleCommand, IdleJob, IdleReport } from './ipc';
import { settleOnce } from './settle-once';
import { WsClient, wsUrl } from './ws-client';

const MAX_ERROR_SAMPLES = 5;
const PROTOCOL_VERSION = '2025-11-25';

/** One idle connection, whatever its transport. */
interface IdleConnection {
  open(): Promise<void>;
  close(): Promise<void>;
  readonly isOpen: boolean;
}

class IdleSse implements IdleConnection {
  private socket: Socket | undefined;
  private ready = false;
  private closing = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly path: string,
    private readonly timeoutMs: number,
    private readonly onDrop: (why: string) => void,
  ) {}

  open(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let head = '';
      const { settle, isSettled } = settleOnce(
        this.timeoutMs,
        `no endpoint event within ${this.timeoutMs} ms`,
        (err) => {
          if (err) {
            socket.destroy();
            reject(err);
          } else {
            this.ready = true;
            resolve();
          }
        },
      );
      const socket = connect(this.port, this.host);
      this.socket = socket;
      socket.setEncoding('latin1');
      socket.on('connect', () =>
        socket.write(
          `GET ${this.path} HTTP/1.1\r\nhost: ${this.host}:${this.port}\r\naccept: text/event-stream\r\n\r\n`,
        ),
      );
      socket.on('data', (chunk: string) => {
        if (isSettled()) return; // keep-alive comments while idle: read and drop
        head += chunk;
        if (!head.startsWith('HTTP/1.1 200')) {
          if (head.includes('\r\n')) settle(new Error(`GET ${this.path}: ${head.split('\r\n')[0]}`));
          return;
        }
        // The endpoint event, complete (its data line ends with a newline).
        const at = head.indexOf('event: endpoint');
        if (at !== -1 && /data: [^\n]*\n/.test(head.slice(at))) settle();
        else if (head.length > 64 * 1024) settle(new Error('no endpoint event in the first 64 KB'));
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        const why = err.code ? `${err.code}: ${err.message}` : err.message;
        if (!isSettled()) settle(new Error(why));
      });
      socket.on('close', () => {
        if (!isSettled()) settle(new Error('connection closed before the endpoint event'));
        else if (this.ready && !this.closing) this.onDrop('SSE stream closed by the target');
        this.ready = false;
      });
    });
  }

  close(): Promise<void> {
    this.closing = true;
    const socket = this.socket;
    if (!socket || socket.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.destroy();
    });
  }

  get isOpen(): boolean {
    return this.ready;
  }
}

class IdleWs implements IdleConnection {
  readonly client: WsClient;

  constructor(url: string, compression: boolean, timeoutMs: number, onDrop: (why: string) => void) {
    this.client = new WsClient(url, { compression, openTimeoutMs: timeoutMs });
    this.client.onDrop = onDrop;
  }

  open(): Promise<void> {
    return this.client.open();
  }

  close(): Promise<void> {
    return this.client.close();
  }

  get isOpen(): boolean {
    return this.client.isOpen;
  }

  /** initialize → notifications/initialized → one tools/call → ack; resolves with the result's wire bytes. */
  async warm(toolParams: string): Promise<number> {
    const init = await this.client.request(
      0,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: {
          protocolVersion: PROTOCOL_VERSION,
          capabilities: {},
          clientInfo: { name: 'mcp-gateway-bench-idle', version: '1.0.0' },
        },
      }),
    );
    if (init.error) throw new Error(`initialize: JSON-RPC ${init.error.code} ${init.error.message}`);
    this.client.send('{"jsonrpc":"2.0","method":"notifications/initialized"}');
    const before = this.client.wireBytes.received;
    const reply = await this.client.request(
      1,
      `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":${toolParams}}`,
    );
    const bytes = this.client.wireBytes.received - before;
    if (reply.error) throw new Error(`tools/call: JSON-RPC ${reply.error.code} ${reply.error.message}`);
    if (reply.result?.isError) throw new Error('tools/call: tool error');
    this.client.ack();
    return bytes;
  }
}

async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  });
  await Promise.all(lanes);
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.startsWith(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

function run(job: IdleJob): void {
  const send = (report: IdleReport, then?: () => void) => process.send?.(report, undefined, undefined, then);
  const samples = new Set<string>();
  let errors = 0;
  let dropped = 0;
  const noteError = (err: unknown) => {
    errors++;
    if (samples.size < MAX_ERROR_SAMPLES) samples.add(describe(err));
  };
  const onDrop = (why: string) => {
    dropped++;
    if (samples.size < MAX_ERROR_SAMPLES) samples.add(`dropped while idle: ${why}`);
  };
  const base = new URL(job.baseUrl);
  const conns: IdleConnection[] = Array.from({ length: job.connections }, () =>
    job.kind === 'ws'
      ? new IdleWs(wsUrl(job.baseUrl, '/ws'), job.wsCompression ?? false, job.deadlineMs, onDrop)
      : new IdleSse(base.hostname, Number(base.port), '/sse', job.deadlineMs, onDrop),
  );
  const report = (type: IdleReport['type'], t0: number, extra: Partial<IdleReport> = {}, then?: () => void) =>
    send(
      {
        type,
        open: conns.filter((c) => c.isOpen).length,
        errors,
        dropped,
        errorSamples: [...samples],
        elapsedMs: Math.round(performance.now() - t0),
        workerRss: process.memoryUsage().rss,
        ...extra,
      },
      then,
    );

  const t0 = performance.now();
  void forEachLimited(conns, job.concurrency, (c) => c.open().catch(noteError)).then(() =>
    report('idle-established', t0),
  );

  process.on('message', (cmd: IdleCommand) => {
    if (cmd?.type === 'idle-warm' && cmd.tool) {
      const t1 = performance.now();
      const params = JSON.stringify(cmd.tool);
      const bytes: number[] = [];
      const ws = conns.filter((c): c is IdleWs => c instanceof IdleWs && c.isOpen);
      void forEachLimited(ws, job.concurrency, (c) =>
        c.warm(params).then((b) => void bytes.push(b), noteError),
      ).then(() =>
        report('idle-warmed', t1, {
          bytesPerResult: bytes.length ? Math.round(bytes.reduce((a, b) => a + b, 0) / bytes.length) : 0,
        }),
      );
    } else if (cmd?.type === 'idle-close') {
      const t1 = performance.now();
      void forEachLimited(conns, 500, (c) => c.close().catch(() => undefined)).then(() =>
        report('idle-closed', t1, {}, () => process.exit(0)),
      );
    }
  });
}

if (require.main === module) {
  process.once('message', (job: IdleJob) => {
    if (job?.type === 'idle-job') run(job);
  });
  process.on('disconnect', () => process.exit(0));
}
