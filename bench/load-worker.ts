/**
 * Load generator, forked once per scenario so it never shares an event loop with the gateway
 * or the upstream. It opens N MCP sessions (the full handshake, as a real client does), then
 * runs a closed loop of tools/call per session: each session sends its next request as soon
 * as the previous answer arrives. Only requests that complete inside the measured window
 * (after the warm-up) count.
 *
 * A bare HTTP/1.1 client (one keep-alive socket per session) rather than the SDK Client: the
 * SDK's per-message work (zod validation, transport bookkeeping) would cap the load before the
 * gateway does, and on a 2-core machine every cycle the generator spends is taken from the target.
 * WebSocket sessions use the `ws` package (ws-client.ts): connect to /ws with subprotocol `mcp`,
 * wait for the gateway's session notification, initialize, then the same closed loop.
 */
import { request, type IncomingMessage } from 'node:http';
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';
import { Http1Connection, type RawResponse } from './http1-client';
import type { BenchTransport, LatencySummary, LoadFailure, LoadJob, LoadResult, WindowMessage } from './ipc';
import { SseParser } from './sse-parser';
import { WsClient, wsUrl } from './ws-client';

const PROTOCOL_VERSION = '2025-11-25';
/** Handshakes run this many at a time, as clients arriving in a burst would, not all 500 at once. */
const HANDSHAKE_CONCURRENCY = 50;
const HANDSHAKE_DEADLINE_MS = 30_000;
/** How long sessions may take to finish their last request after the window closes. */
const DRAIN_GRACE_MS = 5_000;
const MAX_ERROR_SAMPLES = 5;

interface JsonRpcReply {
  id?: unknown;
  result?: any;
  error?: { code: number; message: string };
}

class BenchError extends Error {}

/** Finds the JSON-RPC reply with `id` in a JSON or text/event-stream body. */
function replyFrom(res: RawResponse, id: number): JsonRpcReply {
  const type = res.headers['content-type'] ?? '';
  if (type.startsWith('application/json')) {
    const parsed = JSON.parse(res.body);
    const messages: unknown[] = Array.isArray(parsed) ? parsed : [parsed];
    for (const m of messages) if ((m as JsonRpcReply)?.id === id) return m as JsonRpcReply;
  } else if (type.startsWith('text/event-stream')) {
    let found: JsonRpcReply | undefined;
    new SseParser((_event, data) => {
      const m = JSON.parse(data) as JsonRpcReply;
      if (m?.id === id) found = m;
    }).push(res.body + '\n\n');
    if (found) return found;
  } else {
    throw new BenchError(`HTTP ${res.status}: unexpected content-type "${type}"`);
  }
  throw new BenchError(`HTTP ${res.status}: no reply with id ${id} in ${snippet(res.body)}`);
}

function checkReply(reply: JsonRpcReply, what: string): any {
  if (reply.error) throw new BenchError(`${what}: JSON-RPC ${reply.error.code} ${reply.error.message}`);
  if (reply.result === undefined) throw new BenchError(`${what}: reply without result`);
  return reply.result;
}

/** A tool that failed (bad arguments, say) answers with isError: that is not a measured call. */
function checkToolResult(result: any): void {
  if (result?.isError) {
    throw new BenchError(`tools/call: tool error ${snippet(JSON.stringify(result.content ?? result))}`);
  }
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat || '(empty body)';
}

function initializeBody(id: number): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: 'mcp-gateway-bench', version: '1.0.0' },
    },
  });
}

const INITIALIZED_BODY = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' });

/** What the closed loop needs from a session, whatever its transport. */
interface BenchSession {
  handshake(): Promise<void>;
  /** One tools/call; resolves with the response's content type, rejects on any failure. */
  call(): Promise<string>;
  close(): Promise<void>;
}

const JSON_HEADERS = 'content-type: application/json\r\n';

function callBody(id: number, params: string): string {
  return `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":${params}}`;
}

function isAccepted(res: RawResponse): boolean {
  return res.status === 202 || res.status === 200 || res.status === 204;
}

class StreamableSession implements BenchSession {
  private readonly conn: Http1Connection;
  private readonly path: string;
  /** Constant headers as one preformatted block; session id and version join it after initialize. */
  private headers = `${JSON_HEADERS}accept: application/json, text/event-stream\r\n`;
  private sessionId: string | undefined;
  private nextId = 1;

  constructor(
    url: URL,
    private readonly callParams: string,
    apiKey?: string,
  ) {
    this.conn = new Http1Connection(url.hostname, Number(url.port));
    this.path = url.pathname + url.search;
    if (apiKey !== undefined) this.headers += `x-api-key: ${apiKey}\r\n`;
  }

  async handshake(): Promise<void> {
    const res = await this.conn.request('POST', this.path, this.headers, initializeBody(0));
    if (res.status !== 200) throw new BenchError(`initialize: HTTP ${res.status} ${snippet(res.body)}`);
    const result = checkReply(replyFrom(res, 0), 'initialize');
    // Per the spec these go on every later request; a stateless server may omit the session id.
    this.sessionId = res.headers['mcp-session-id'];
    this.headers += `mcp-protocol-version: ${result.protocolVersion ?? PROTOCOL_VERSION}\r\n`;
    if (this.sessionId) this.headers += `mcp-session-id: ${this.sessionId}\r\n`;
    const note = await this.conn.request('POST', this.path, this.headers, INITIALIZED_BODY);
    if (!isAccepted(note)) {
      throw new BenchError(`notifications/initialized: HTTP ${note.status} ${snippet(note.body)}`);
    }
  }

  async call(): Promise<string> {
    const id = this.nextId++;
    const res = await this.conn.request('POST', this.path, this.headers, callBody(id, this.callParams));
    if (res.status !== 200) throw new BenchError(`tools/call: HTTP ${res.status} ${snippet(res.body)}`);
    checkToolResult(checkReply(replyFrom(res, id), 'tools/call'));
    const type = res.headers['content-type'] ?? '';
    const semi = type.indexOf(';');
    return semi === -1 ? type : type.slice(0, semi);
  }

  async close(): Promise<void> {
    // A well-behaved client ends its session, so memory measured after a level is what stays behind.
    try {
      if (!this.sessionId) return;
      const res = await this.conn.request('DELETE', this.path, this.headers);
      if (res.status !== 200 && res.status !== 202 && res.status !== 204) {
        throw new BenchError(`DELETE: HTTP ${res.status} ${snippet(res.body)}`);
      }
    } finally {
      this.conn.close();
    }
  }
}

interface Waiter {
  resolve(reply: JsonRpcReply): void;
  reject(err: Error): void;
}

/** Legacy HTTP+SSE (2024-11-05): answers arrive on the GET stream, POSTs only get 202. */
class LegacySseSession implements BenchSession {
  private endpointPath = '';
  private conn: Http1Connection | undefined;
  private stream: IncomingMessage | undefined;
  private readonly waiting = new Map<unknown, Waiter>();
  private nextId = 1;

  constructor(
    private readonly url: URL,
    private readonly callParams: string,
  ) {}

  async handshake(): Promise<void> {
    await this.open();
    checkReply(await this.exchange(0, initializeBody(0)), 'initialize');
    const note = await this.conn!.request('POST', this.endpointPath, JSON_HEADERS, INITIALIZED_BODY);
    if (!isAccepted(note)) {
      throw new BenchError(`notifications/initialized: HTTP ${note.status} ${snippet(note.body)}`);
    }
  }

  async call(): Promise<string> {
    const id = this.nextId++;
    checkToolResult(checkReply(await this.exchange(id, callBody(id, this.callParams)), 'tools/call'));
    return 'text/event-stream';
  }

  async close(): Promise<void> {
    this.stream?.destroy();
    this.conn?.close();
  }

  /** The stream is long-lived and one per session, so node:http's cost does not matter here. */
  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: this.url.hostname,
          port: this.url.port,
          path: this.url.pathname + this.url.search,
          headers: { accept: 'text/event-stream' },
          agent: false,
        },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            reject(new BenchError(`GET ${this.url.pathname}: HTTP ${res.statusCode}`));
            return;
          }
          this.stream = res;
          res.setEncoding('utf8');
          const parser = new SseParser((event, data) => {
            if (event === 'endpoint') {
              const endpoint = new URL(data, this.url);
              this.endpointPath = endpoint.pathname + endpoint.search;
              this.conn ??= new Http1Connection(endpoint.hostname, Number(endpoint.port));
              resolve();
            } else if (event === 'message') {
              this.onMessage(data);
            }
          });
          res.on('data', (chunk: string) => parser.push(chunk));
          res.on('close', () => this.failAll(new BenchError('SSE stream closed')));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  private onMessage(data: string): void {
    const msg = JSON.parse(data) as JsonRpcReply;
    const waiter = this.waiting.get(msg.id);
    if (!waiter) return;
    this.waiting.delete(msg.id);
    waiter.resolve(msg);
  }

  private failAll(err: Error): void {
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }

  /** POSTs a request and resolves with its answer from the stream (which may beat the 202). */
  private async exchange(id: number, body: string): Promise<JsonRpcReply> {
    if (!this.conn) throw new BenchError('no endpoint event received');
    const answer = new Promise<JsonRpcReply>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    const res = await this.conn
      .request('POST', this.endpointPath, JSON_HEADERS, body)
      .catch((err: Error) => err);
    if (res instanceof Error || !isAccepted(res)) {
      this.waiting.delete(id);
      answer.catch(() => undefined);
      throw res instanceof Error ? res : new BenchError(`POST: HTTP ${res.status} ${snippet(res.body)}`);
    }
    return answer;
  }
}

/** WebSocket (the gateway's /ws): one connection per session, requests and answers as frames. */
class WsSession implements BenchSession {
  private readonly client: WsClient;
  private nextId = 1;

  constructor(
    url: string,
    private readonly callParams: string,
    compression: boolean,
    apiKey?: string,
  ) {
    this.client = new WsClient(url, {
      compression,
      openTimeoutMs: HANDSHAKE_DEADLINE_MS,
      headers: apiKey === undefined ? undefined : { 'x-api-key': apiKey },
    });
  }

  async handshake(): Promise<void> {
    await this.client.open();
    checkReply(await this.client.request(0, initializeBody(0)), 'initialize');
    this.client.send(INITIALIZED_BODY);
  }

  async call(): Promise<string> {
    const id = this.nextId++;
    checkToolResult(checkReply(await this.client.request(id, callBody(id, this.callParams)), 'tools/call'));
    return 'ws';
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  get wire(): { sent: number; received: number } {
    return this.client.wireBytes;
  }

  get extensions(): string {
    return this.client.extensions;
  }
}

function summarize(h: RecordableHistogram): LatencySummary {
  // Recorded in microseconds; reported in milliseconds.
  const ms = (us: number) => Math.round(us) / 1000;
  if (h.count === 0) return { p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
  return {
    p50: ms(h.percentile(50)),
    p90: ms(h.percentile(90)),
    p99: ms(h.percentile(99)),
    max: ms(h.max),
    mean: ms(h.mean),
  };
}

function recordUs(h: RecordableHistogram, ms: number): void {
  h.record(Math.max(1, Math.round(ms * 1000)));
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  });
  await Promise.all(lanes);
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BenchError(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function describe(err: unknown): string {
  if (err instanceof BenchError) return err.message;
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${code}: ${err.message}` : `${err.name}: ${err.message}`;
  }
  return String(err);
}

function createSession(job: LoadJob, callParams: string, index: number): BenchSession {
  // A client id per session (the gateway's `client_id` query parameter), so a ring keyed on the
  // client id spreads the sessions over the service's replicas.
  const path =
    job.clientIdPrefix === undefined
      ? job.path
      : `${job.path}?client_id=${encodeURIComponent(`${job.clientIdPrefix}-${index}`)}`;
  const url = new URL(path, job.baseUrl);
  const kind: BenchTransport = job.transport;
  if (kind === 'ws')
    return new WsSession(wsUrl(job.baseUrl, path), callParams, job.wsCompression ?? false, job.apiKey);
  return kind === 'sse'
    ? new LegacySseSession(url, callParams)
    : new StreamableSession(url, callParams, job.apiKey);
}

export async function runLoad(job: LoadJob): Promise<LoadResult> {
  const callParams = JSON.stringify(job.tool);
  const errorSamples = new Set<string>();
  const noteError = (err: unknown) => {
    if (errorSamples.size < MAX_ERROR_SAMPLES) errorSamples.add(describe(err));
  };

  const handshakeHist = createHistogram();
  const sessions: BenchSession[] = [];
  const candidates = Array.from({ length: job.sessions }, (_, i) => createSession(job, callParams, i));
  await withDeadline(
    forEachLimited(candidates, HANDSHAKE_CONCURRENCY, async (s) => {
      const t0 = performance.now();
      try {
        await s.handshake();
        recordUs(handshakeHist, performance.now() - t0);
        sessions.push(s);
      } catch (err) {
        noteError(err);
        await s.close().catch(() => undefined);
      }
    }),
    HANDSHAKE_DEADLINE_MS,
    'session handshakes',
  ).catch(noteError);

  const latency = createHistogram();
  const responseTypes: Record<string, number> = {};
  let requests = 0;
  let errors = 0;
  let inFlight = 0;
  const windowStart = performance.now() + job.warmupMs;
  const windowEnd = windowStart + job.durationMs;
  // The orchestrator samples the other processes' CPU when the window opens and closes; this
  // process samples its own. Driven by request completions rather than timers: under load a
  // timer can fire after the loops have already finished.
  let cpuAtStart: NodeJS.CpuUsage | undefined;
  let cpuDuring: NodeJS.CpuUsage | undefined;
  let cpuSpanStart = 0;
  let cpuSpanMs = 0;
  const wsSessions = sessions.filter((x): x is WsSession => x instanceof WsSession);
  const wireSum = () =>
    wsSessions.reduce(
      (acc, x) => {
        const w = x.wire;
        return { sent: acc.sent + w.sent, received: acc.received + w.received };
      },
      { sent: 0, received: 0 },
    );
  let wireAtStart: { sent: number; received: number } | undefined;
  let wireDuring: { sent: number; received: number } | undefined;
  /** tools/call answered (or failed) between the two wire samples. */
  let callsBetweenWireSamples = 0;
  const windowEdge = (t: number) => {
    if (cpuAtStart === undefined && t >= windowStart) {
      cpuAtStart = process.cpuUsage();
      if (wsSessions.length > 0) wireAtStart = wireSum();
      cpuSpanStart = t;
      process.send?.({ type: 'window', phase: 'start' } satisfies WindowMessage);
    }
    if (cpuAtStart !== undefined && t > windowEnd) {
      cpuDuring = process.cpuUsage(cpuAtStart);
      if (wireAtStart) {
        const now = wireSum();
        wireDuring = { sent: now.sent - wireAtStart.sent, received: now.received - wireAtStart.received };
      }
      cpuSpanMs = t - cpuSpanStart;
      process.send?.({ type: 'window', phase: 'end' } satisfies WindowMessage);
    }
  };

  const loop = async (s: BenchSession): Promise<void> => {
    for (;;) {
      const t0 = performance.now();
      let type: string | undefined;
      let failure: unknown;
      inFlight++;
      try {
        type = await s.call();
      } catch (err) {
        failure = err;
      }
      inFlight--;
      const t1 = performance.now();
      if (cpuDuring === undefined) {
        windowEdge(t1);
        if (cpuAtStart !== undefined && cpuDuring === undefined) callsBetweenWireSamples++;
      }
      if (t1 >= windowStart && t1 <= windowEnd) {
        if (failure === undefined) {
          requests++;
          recordUs(latency, t1 - t0);
          responseTypes[type!] = (responseTypes[type!] ?? 0) + 1;
        } else {
          errors++;
          noteError(failure);
        }
      }
      if (t1 > windowEnd) return;
      // A target that fails at once would otherwise turn this loop into a busy spin.
      if (failure !== undefined) await new Promise((r) => setTimeout(r, 10));
    }
  };

  if (sessions.length > 0) {
    const loops = Promise.all(sessions.map(loop));
    const runFor = Math.max(0, windowEnd - performance.now());
    await withDeadline(loops, runFor + DRAIN_GRACE_MS, 'the last requests').catch((err) => {
      // Requests still unanswered this long after the window are failures the target caused.
      errors += inFlight;
      noteError(err);
    });
  } else {
    errors++;
  }

  let closeErrors = 0;
  await withDeadline(
    forEachLimited(sessions, HANDSHAKE_CONCURRENCY, (s) =>
      s.close().catch((err: unknown) => {
        closeErrors++;
        noteError(err);
      }),
    ),
    DRAIN_GRACE_MS,
    'closing sessions',
  ).catch(noteError);

  return {
    type: 'result',
    requests,
    errors,
    errorSamples: [...errorSamples],
    durationMs: job.durationMs,
    reqPerSec: Math.round((requests / job.durationMs) * 1000),
    latencyMs: summarize(latency),
    handshakeMs: summarize(handshakeHist),
    sessionsOpen: sessions.length,
    closeErrors,
    responseTypes,
    cpuPercent:
      cpuDuring && cpuSpanMs > 0 ? Math.round((cpuDuring.user + cpuDuring.system) / (cpuSpanMs * 10)) : 0,
    ...(wireDuring && callsBetweenWireSamples > 0
      ? {
          wireBytesPerCall: {
            sent: Math.round(wireDuring.sent / callsBetweenWireSamples),
            received: Math.round(wireDuring.received / callsBetweenWireSamples),
          },
        }
      : {}),
    ...(wsSessions.length > 0 ? { negotiatedExtensions: wsSessions[0].extensions } : {}),
  };
}

if (require.main === module) {
  process.once('message', (job: LoadJob) => {
    runLoad(job)
      .catch((err: unknown): LoadFailure => ({ type: 'error', error: describe(err) }))
      .then((result) => process.send!(result, () => process.exit(0)));
  });
  process.on('disconnect', () => process.exit(0));
}
