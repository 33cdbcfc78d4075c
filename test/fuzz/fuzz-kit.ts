/**
 * Shared pieces of the fuzz suites: the gateway under test (in-process, short timeouts so fuzz
 * sessions expire within the run), a recorder for process-level failures, a raw HTTP client that
 * sends bytes fetch() will not, and the checks every property run ends with.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import * as fc from 'fast-check';
import { SessionService } from '../../src/session/session.module';
import { connectClient, type ClientTransportName } from '../helpers/clients';
import { startGateway, type RunningGateway } from '../helpers/gateway';
import { childPids } from '../helpers/leaks';
import { testSeed } from '../helpers/seed';

/** Cases per property; FUZZ_RUNS=<n> scales a run up (or down) without editing the suite. */
export const RUNS = Number(process.env.FUZZ_RUNS ?? 0) || 0;
/** One seed per file run; FUZZ_SEED=<seed> replays a failure. */
export const SEED = testSeed('FUZZ_SEED');

export const MAX_BODY_BYTES = 64 * 1024;
export const MAX_FRAME_BYTES = 32 * 1024;
/** What a case may take before it counts as a hang (the demo answers in milliseconds). */
export const CASE_TIMEOUT_MS = 2500;

/** Starts the real app with timeouts short enough that fuzz sessions expire inside the test. */
export function startFuzzGateway(): Promise<RunningGateway> {
  return startGateway({
    maxBodyBytes: MAX_BODY_BYTES,
    session: { idleTimeoutMs: 1000, sweepIntervalMs: 100 },
    ws: { maxFrameBytes: MAX_FRAME_BYTES, heartbeatIntervalMs: 1000 },
  });
}

/**
 * Records what would end (or poison) a real process: an uncaught exception or an unhandled
 * rejection. The listeners keep this in-process gateway alive so that one run can report every
 * such event with the case that caused it.
 */
export class CrashRecorder {
  /** Since the last reset (one property); `total` counts the whole file. */
  events: string[] = [];
  total = 0;
  private readonly onException = (err: unknown) => this.record(`uncaughtException: ${describe(err)}`);
  private readonly onRejection = (err: unknown) => this.record(`unhandledRejection: ${describe(err)}`);

  private record(event: string): void {
    this.events.push(event);
    this.total++;
  }

  /** A property starts clean, so one failure is reported once, by the property that caused it. */
  reset(): void {
    this.events = [];
  }

  install(): void {
    process.on('uncaughtException', this.onException);
    process.on('unhandledRejection', this.onRejection);
  }

  uninstall(): void {
    process.off('uncaughtException', this.onException);
    process.off('unhandledRejection', this.onRejection);
  }

  /** Lets pending rejections surface (they are reported after the microtask queue drains). */
  async settle(): Promise<void> {
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
  }

  assertNone(what: string): void {
    assert.deepEqual(this.events, [], `${what}: the process must not see these`);
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message.slice(0, 300)}`;
  return String(err).slice(0, 300);
}

export function fuzzOptions(runs: number): fc.Parameters<unknown> {
  // endOnFailure: no shrinking, whose replays against a live server would take unbounded time;
  // the failing case and the seed are in the error, and FUZZ_SEED replays the run.
  return { numRuns: RUNS || runs, seed: SEED, endOnFailure: true, includeErrorInReport: true };
}

export function logCases(transport: string, cases: number): void {
  console.log(`fuzz ${transport}: ${cases} cases, seed=${SEED} (replay with FUZZ_SEED=${SEED})`);
}

// ------------------------------------------------------------------ raw HTTP

/** An SSE event carrying a JSON-RPC response (the gateway writes `result`/`error` members). */
const ANSWER_EVENT = /\ndata: \{.*"(result|error)":/;

export interface RawAnswer {
  status: number;
  head: string;
  body: Buffer;
}

/**
 * Writes `request` as-is on a new connection and reads one answer: the whole body; for an event
 * stream the head, or with `awaitAnswer` the first JSON-RPC response on it; for a 101 the head
 * (then the connection is dropped, as a client that goes away). Rejects when nothing comes back
 * within CASE_TIMEOUT_MS: a request that no one answers is a failure.
 */
export function rawHttp(port: number, request: Buffer, awaitAnswer = false): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) return reject(err);
      const all = skipInterim(Buffer.concat(chunks));
      const end = all.indexOf('\r\n\r\n');
      const head = (end === -1 ? all : all.subarray(0, end)).toString('latin1');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
      resolve({ status, head, body: end === -1 ? Buffer.alloc(0) : all.subarray(end + 4) });
    };
    const timer = setTimeout(
      () => finish(new Error(`no answer within ${CASE_TIMEOUT_MS} ms`)),
      CASE_TIMEOUT_MS,
    );
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const all = skipInterim(chunks.length === 1 ? chunk : Buffer.concat(chunks));
      const end = all.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = all.subarray(0, end).toString('latin1');
      if (/^HTTP\/1\.1 101/.test(head)) return finish();
      if (!/\r\ncontent-type: text\/event-stream/i.test(head)) return;
      if (!awaitAnswer || ANSWER_EVENT.test(all.subarray(end).toString('utf8'))) finish();
    });
    socket.on('end', () => finish());
    socket.on('close', () => finish());
    // A server that answers before reading all of a large body resets the connection: the answer counts.
    socket.on('error', (err) => (chunks.length > 0 ? finish() : finish(err)));
    // Not end(): a half-close makes the server drop the connection before a slow answer.
    socket.write(request);
  });
}

/** Drops interim answers (100 Continue, 102, 103) that come before the real one. */
function skipInterim(all: Buffer): Buffer {
  while (/^HTTP\/1\.1 1(0[02-9]|[1-9]\d) /.test(all.subarray(0, 16).toString('latin1'))) {
    const end = all.indexOf('\r\n\r\n');
    if (end === -1) return Buffer.alloc(0);
    all = all.subarray(end + 4);
  }
  return all;
}

/** Builds an HTTP/1.1 request; `headers` may repeat names and hold any bytes. */
export function httpRequest(
  port: number,
  method: string,
  target: string,
  headers: Array<[string, string | Buffer]>,
  body?: Buffer,
): Buffer {
  const parts: Buffer[] = [
    Buffer.from(`${method} ${target} HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n`, 'latin1'),
  ];
  for (const [name, value] of headers) {
    parts.push(
      Buffer.from(`${name}: `, 'latin1'),
      Buffer.isBuffer(value) ? value : Buffer.from(value),
      Buffer.from('\r\n'),
    );
  }
  if (body) parts.push(Buffer.from(`content-length: ${body.length}\r\n`));
  parts.push(Buffer.from('connection: close\r\n\r\n'));
  if (body) parts.push(body);
  return Buffer.concat(parts);
}

/** An answer the gateway may give to bad input: anything but a server error or silence. */
export function assertClientAnswer(answer: RawAnswer, what: string): void {
  assert.ok(
    answer.status >= 100 && answer.status < 500,
    `${what}: answered ${answer.status || 'nothing'}\n${answer.head}`,
  );
  if (
    answer.status >= 400 &&
    /\r\ncontent-type: application\/json/i.test(answer.head) &&
    answer.body.length > 0
  ) {
    const text = answer.body.toString('utf8');
    if (!/\r\ntransfer-encoding: chunked/i.test(answer.head)) {
      assert.doesNotThrow(() => JSON.parse(text), `${what}: error body is JSON: ${text.slice(0, 200)}`);
    }
  }
}

// ------------------------------------------------------------------ after each property

/** Which case opened each session, so that a session left behind names the input that made it. */
export class SessionOrigins {
  private readonly origin = new Map<string, string>();

  constructor(private readonly gw: RunningGateway) {}

  /** After a case: the sessions that are new since the last call were opened by `what`. */
  note(what: string): void {
    for (const s of this.gw.gateway.app.get(SessionService).all()) {
      if (!this.origin.has(s.id)) this.origin.set(s.id, what);
    }
  }

  /** The sessions alive now, each with the case that opened it. */
  describe(): string {
    const out: string[] = [];
    for (const s of this.gw.gateway.app.get(SessionService).all()) {
      const live = s.hasLiveChannel() ? 'a live channel' : 'no channel';
      out.push(`${s.id} (${s.transport}, ${live}) opened by ${this.origin.get(s.id) ?? 'none of the cases'}`);
    }
    return out.join('; ');
  }
}

/**
 * The checks that end every property run: nothing reached the process, a well-behaved SDK client
 * is served, every fuzz session expires (the registry is back to its baseline), no child process
 * is left, and the handles (sockets, timers) are back to what they were before the run.
 */
export async function assertHealthyAfter(
  gw: RunningGateway,
  crashes: CrashRecorder,
  transport: ClientTransportName,
  baseline: ResourceCounts,
  what: string,
  origins?: SessionOrigins,
): Promise<void> {
  await crashes.settle();
  crashes.assertNone(what);
  const { client } = await connectClient(gw.url, transport);
  const { tools } = await client.listTools();
  assert.ok(
    tools.some((t) => t.name === 'echo'),
    `${what}: an SDK client over ${transport} is served right after`,
  );
  const echoed = await client.callTool({ name: 'echo', arguments: { text: 'still here' } });
  assert.match(JSON.stringify(echoed.content), /still here/);
  await client.close();
  await assertNoLeaks(gw, baseline, what, true, origins);
  crashes.assertNone(what);
}

export type ResourceCounts = Record<string, number>;

/** Counts of the kinds of handle a leak would show up as. */
export function resourceCounts(): ResourceCounts {
  const counts: ResourceCounts = {};
  for (const kind of process.getActiveResourcesInfo()) {
    if (!/^(TCPSocketWrap|TCPServerWrap|Timeout|ProcessWrap|PipeWrap|Immediate)$/.test(kind)) continue;
    counts[kind] = (counts[kind] ?? 0) + 1;
  }
  return counts;
}

function exceeds(now: ResourceCounts, baseline: ResourceCounts): string[] {
  return Object.entries(now)
    .filter(([k, n]) => k !== 'Immediate' && k !== 'sessions' && n > (baseline[k] ?? 0))
    .map(([k, n]) => `${k} ${n} > ${baseline[k] ?? 0}`);
}

/** Polls (bounded) until sessions, children and handles are back to the baseline, then asserts it. */
export async function assertNoLeaks(
  gw: RunningGateway | undefined,
  baseline: ResourceCounts | undefined,
  what: string,
  check = true,
  origins?: SessionOrigins,
) {
  const sessions = gw?.gateway.app.get(SessionService);
  // Sessions a failed earlier property left behind are its failure, not this one's.
  const sessionBaseline = baseline?.sessions ?? 0;
  const deadline = Date.now() + 15_000;
  const state = () => ({
    sessions: sessions?.size ?? 0,
    children: childPids(),
    handles: baseline ? exceeds(resourceCounts(), baseline) : [],
  });
  let s = state();
  while (
    (s.sessions > sessionBaseline || s.children.length > 0 || s.handles.length > 0) &&
    Date.now() < deadline
  ) {
    // The SDK clients' fetch pool keeps idle keep-alive sockets (both ends live in this process);
    // closing idle ones leaves only connections the gateway still holds open.
    (
      gw?.gateway.app.getHttpServer() as { closeIdleConnections?: () => void } | undefined
    )?.closeIdleConnections?.();
    await new Promise((r) => setTimeout(r, 100));
    s = state();
  }
  if (!check) return;
  assert.ok(
    s.sessions <= sessionBaseline,
    `${what}: every fuzz session expired (${s.sessions} > ${sessionBaseline})${
      origins ? `: ${origins.describe()}` : ''
    }`,
  );
  assert.deepEqual(s.children, [], `${what}: no child process left`);
  assert.deepEqual(s.handles, [], `${what}: no socket or timer left (${JSON.stringify(resourceCounts())})`);
}

/**
 * The handle counts to come back to: taken after one SDK client has been served (its first use
 * creates lasting things such as the upstream pool's warm state) and its session has ended.
 */
export async function warmBaseline(
  gw: RunningGateway,
  transport: ClientTransportName,
): Promise<ResourceCounts> {
  const { client } = await connectClient(gw.url, transport);
  await client.listTools();
  await client.close();
  await assertNoLeaks(gw, undefined, 'warm-up', false);
  const server = gw.gateway.app.getHttpServer() as { closeIdleConnections(): void };
  server.closeIdleConnections();
  await new Promise((r) => setTimeout(r, 50));
  return { ...resourceCounts(), sessions: gw.gateway.app.get(SessionService).size };
}
