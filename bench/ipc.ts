/**
 * Messages between the bench orchestrator (run.ts) and its child processes. Every child is
 * forked with an IPC channel so the orchestrator learns URLs and results without parsing stdout.
 */

/** Client transport a load worker speaks. */
export type BenchTransport = 'streamable-http' | 'sse' | 'ws';

/** A child that serves HTTP says where once it listens. */
export interface ReadyMessage {
  type: 'ready';
  url: string;
}

/** A child that failed to start says why (the exact error, for the report). */
export interface FailedMessage {
  type: 'failed';
  error: string;
}

/** Asks a server child (gateway or upstream) for its memory and CPU use. */
export interface UsageRequest {
  type: 'usage';
  /** Echoed in the reply: samples overlap (the peak sampler runs while other requests are made). */
  seq: number;
  /** Run a full GC first (the gateway is forked with --expose-gc) to see retained memory. */
  gc: boolean;
}

export interface UsageReply {
  type: 'usage';
  seq: number;
  memory: MemorySample;
  /**
   * What the process holds, in its own terms: the gateway's sessions, upstream leases and
   * WebSocket connections; the fast upstream's sessions and open sockets. Absent keys: unknown.
   */
  counts: Record<string, number>;
  /** process.cpuUsage() in microseconds. */
  cpu: { user: number; system: number };
  /** Wall clock (ms) when sampled, to turn CPU deltas into a percentage. */
  at: number;
}

/** Starts or stops a CPU profile of the gateway (inspector Profiler), written to `file` on stop. */
export interface ProfileRequest {
  type: 'profile';
  phase: 'start' | 'stop';
  file?: string;
}

export interface ProfileReply {
  type: 'profile';
  phase: 'start' | 'stop';
  error?: string;
}

/** A load worker tells the orchestrator when its measured window opens and closes. */
export interface WindowMessage {
  type: 'window';
  phase: 'start' | 'end';
}

export interface MemorySample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

/** What a load worker is asked to do: one scenario at one concurrency. */
export interface LoadJob {
  type: 'job';
  /** Base URL of the target (gateway or upstream), e.g. http://127.0.0.1:40000 */
  baseUrl: string;
  transport: BenchTransport;
  /** Path of the endpoint: /mcp (Streamable HTTP), /sse (legacy SSE) or /ws (WebSocket). */
  path: string;
  sessions: number;
  warmupMs: number;
  durationMs: number;
  /** tools/call params sent on every request. */
  tool: { name: string; arguments: Record<string, unknown> };
  /** WebSocket only: offer permessage-deflate (the gateway accepts it when WS_COMPRESSION is on). */
  wsCompression?: boolean;
  /** Session i names itself `<prefix>-<i>` (query `client_id`); absent: anonymous sessions. */
  clientIdPrefix?: string;
  /** Sent as `X-API-Key` on every request (Streamable HTTP) or at the upgrade (WebSocket). */
  apiKey?: string;
}

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface LoadResult {
  type: 'result';
  /** Requests completed (successfully) inside the measured window. */
  requests: number;
  /** Failed requests inside the measured window (HTTP status, JSON-RPC error, network error). */
  errors: number;
  /** Up to a few distinct error descriptions, so a failure is reported as it was seen. */
  errorSamples: string[];
  durationMs: number;
  reqPerSec: number;
  latencyMs: LatencySummary;
  /** Per-session handshake (initialize + notifications/initialized) time. */
  handshakeMs: LatencySummary;
  /** Sessions that completed the handshake. */
  sessionsOpen: number;
  /** Sessions whose DELETE failed at the end (their state may stay in the target until idle expiry). */
  closeErrors: number;
  /** Content types of tools/call responses, to show whether the target answered JSON or SSE. */
  responseTypes: Record<string, number>;
  /** The load worker's own CPU use during the window (100 = one core). */
  cpuPercent: number;
  /**
   * WebSocket only: TCP bytes per tools/call inside the window (frames, headers, any
   * compression), client → target and target → client.
   */
  wireBytesPerCall?: { sent: number; received: number };
  /** WebSocket only: whether the target accepted permessage-deflate (Sec-WebSocket-Extensions). */
  negotiatedExtensions?: string;
}

export interface LoadFailure {
  type: 'error';
  error: string;
}

/**
 * An idle-connection job: open `connections` WebSocket or legacy SSE connections, report,
 * hold them until told to close. Several idle workers share one scenario.
 */
export interface IdleJob {
  type: 'idle-job';
  baseUrl: string;
  kind: 'ws' | 'sse';
  connections: number;
  /** Connection attempts in flight at a time, per worker. */
  concurrency: number;
  /** Give up on connections not established by then (ms after the job starts). */
  deadlineMs: number;
  /** WebSocket only: offer permessage-deflate. */
  wsCompression?: boolean;
}

/** Orchestrator → idle worker, after `established`. */
export interface IdleCommand {
  type: 'idle-warm' | 'idle-close';
  /** idle-warm: each connection does initialize + one tools/call with these params, then acks. */
  tool?: { name: string; arguments: Record<string, unknown> };
}

export interface IdleReport {
  type: 'idle-established' | 'idle-warmed' | 'idle-closed';
  /** Connections open now (established: ready ones; closed: still open after closing, should be 0). */
  open: number;
  /** Connection attempts (or warm-up calls) that failed, and connections that dropped while idle. */
  errors: number;
  /** Connections the target closed while they were meant to stay idle. */
  dropped: number;
  errorSamples: string[];
  /** Time this step took in the worker. */
  elapsedMs: number;
  /** The worker's own RSS (its clients' cost is not the gateway's). */
  workerRss: number;
  /** idle-warmed: bytes received per warm-up tool result, TCP level. */
  bytesPerResult?: number;
}
