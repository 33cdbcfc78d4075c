import type { Logger } from '@nestjs/common';
import type { JsonRpcId, JsonRpcMessage, JsonRpcRequest } from '../../libs/protocol/src/jsonrpc';
import { Header, Method } from '../../libs/protocol/src/mcp';
import { SseParser, type SseHandler } from '../../libs/protocol/src/sse-parser';
import { abortForTimeout, type ChunkSink, HttpCall, type PauseGate, Sleeper } from './http-client';
import type { UpstreamOptions } from './upstream-options';
import { backoffDelay, describeError } from './upstream-handshake';

/** A GET stream that stayed open this long ended normally (e.g. an idle proxy cut it). */
const STABLE_STREAM_MS = 5000;

/** Where the messages of one answer go: the request it answers is marked answered when they do. */
export interface AnswerTarget {
  readonly requestId: JsonRpcId | undefined;
  answered: boolean;
}

/** A POST whose answer came as an SSE stream, which the receiver reads and, if it breaks, resumes. */
export interface StreamedPost extends HttpCall, AnswerTarget {
  readonly message: JsonRpcMessage;
  /** The client cancelled the request: stop resuming, report nothing. */
  readonly cancelled: boolean;
  /** The GET resuming this answer's stream, while one runs (the sender aborts it with the POST). */
  resumeCall: HttpCall | undefined;
}

/**
 * What the receiver needs of its upstream: a back-link, as ws's Receiver has to its WebSocket.
 * Messages go back through it; the upstream session (its id, generation and replay) stays there.
 */
export interface ReceiverOwner {
  /** Bumped whenever the upstream session is replaced: a loop of an older one stops. */
  readonly sessionGeneration: number;
  /** An upstream session is established (the standalone GET belongs to one). */
  readonly hasSession: boolean;
  /** Fresh headers of a request inside the upstream session; the caller may add to them. */
  sessionHeaders(): Record<string, string>;
  /** Parses one SSE data field and hands its message(s) on. */
  deliverText(text: string, target: AnswerTarget): void;
  /** Answers a request whose answer can no longer come. */
  requestFailed(message: JsonRpcMessage, why: string): void;
  /** The standalone GET found the upstream session gone (404). */
  sessionGone(): void;
}

/**
 * One SSE response stream: a POST's (carrying the answer to `requestId`), the same stream resumed
 * by GET + Last-Event-ID, or the standalone GET stream (`requestId` undefined).
 */
class SseResponseStream implements SseHandler, ChunkSink, AnswerTarget {
  /** The response to requestId has arrived: nothing left to resume. */
  answered = false;
  /** The server's `retry:` hint (2025-11-25 polling: reconnect after this many ms). */
  retryMs: number | undefined = undefined;
  /** Messages delivered on this connection (a stream that carried something was not a failure). */
  delivered = 0;
  /** Made on first use: a JSON answer (the common case for quick requests) never needs one. */
  private sse: SseParser | undefined = undefined;

  constructor(
    private readonly owner: ReceiverOwner,
    readonly requestId: JsonRpcId | undefined,
  ) {}

  get parser(): SseParser {
    if (!this.sse) this.sse = new SseParser(this);
    return this.sse;
  }

  /** A body chunk of the SSE response (ChunkSink). */
  chunk(bytes: Buffer): void {
    this.parser.pushBytes(bytes);
  }

  sseEvent(data: string, event: string): void {
    if (event !== 'message') return;
    this.delivered++;
    this.owner.deliverText(data, this);
  }

  sseRetry(ms: number): void {
    this.retryMs = ms;
  }
}

/**
 * The receiving half of a Streamable HTTP upstream (as ws splits its Receiver from its Sender):
 * reads a POST's SSE answer, resumes it with GET + Last-Event-ID when it ends before the answer,
 * and keeps the standalone GET stream open for server-initiated messages. The upstream posts and
 * owns the session; every message read here goes back to it.
 */
export class StreamableHttpReceiver {
  /** Standalone GET: 0 none, 1 running, 2 the server does not offer one (405). */
  private standalone = 0;
  private standaloneAbort: HttpCall | undefined = undefined;
  private closed = false;
  private readonly sleeper = new Sleeper();

  constructor(
    private readonly owner: ReceiverOwner,
    /** The URL split the way undici's dispatcher takes it. */
    private readonly origin: string,
    private readonly path: string,
    private readonly options: UpstreamOptions,
    /** The upstream's: while paused nothing is read, so TCP pushes back on the upstream. */
    private readonly gate: PauseGate,
    /** The upstream's calls in progress, all aborted when it closes; each GET is one of them. */
    private readonly active: Set<HttpCall>,
    private readonly logger: Logger,
  ) {}

  /** Stops every loop and cuts every backoff sleep short (the upstream aborts the calls). */
  close(): void {
    this.closed = true;
    this.sleeper.wakeAll();
  }

  /** Reads a POST's SSE answer; resumes the stream when it ends before the answer came. */
  async readPostStream(post: StreamedPost): Promise<void> {
    const stream = new SseResponseStream(this.owner, post.requestId);
    await this.read(post, stream);
    if ((post.message as JsonRpcRequest).method === Method.Initialized) this.openStandalone();
    if (post.requestId !== undefined && !stream.answered && !post.cancelled && !this.closed)
      await this.resumeOrFail(post, stream);
  }

  /** Reads an SSE body until it ends, is aborted or breaks; pauses when the client is slow. */
  private async read(res: HttpCall, stream: SseResponseStream): Promise<void> {
    try {
      // While the gate is paused nothing is read, so TCP pushes back on the upstream.
      await res.stream(stream, this.gate);
    } catch (err) {
      if (!this.closed) this.logger.debug(`SSE stream ended: ${describeError(err)}`);
    }
  }

  /**
   * The POST's stream ended before the response. With an event id the server lets us resume it
   * with GET + Last-Event-ID (and under 2025-11-25 polling it closes on purpose and expects us back
   * after `retry`); without one the answer is lost and the request gets an error.
   */
  private async resumeOrFail(post: StreamedPost, stream: SseResponseStream): Promise<void> {
    const message = post.message;
    const requestId = stream.requestId!;
    const generation = this.owner.sessionGeneration;
    let failedAttempts = 0;
    while (!stream.answered && !this.closed) {
      const lastEventId = stream.parser.lastEventId;
      if (lastEventId === undefined || lastEventId === '') {
        this.owner.requestFailed(
          message,
          'Upstream unreachable: the response stream closed before the answer',
        );
        return;
      }
      if (generation !== this.owner.sessionGeneration) {
        this.owner.requestFailed(
          message,
          'Upstream unavailable: upstream session was replaced before the answer',
        );
        return;
      }
      await this.sleeper.sleep(
        stream.retryMs ?? backoffDelay(failedAttempts, this.options.retryMinMs, this.options.retryMaxMs),
      );
      if (this.closed || post.cancelled) return;
      stream.parser.reset();
      stream.delivered = 0;
      const status = await this.get(stream, lastEventId, false, post);
      if (post.cancelled) return;
      if (status === 200 && (stream.delivered > 0 || stream.parser.lastEventId !== lastEventId)) {
        failedAttempts = 0; // progress was made (polling): keep following the stream
        continue;
      }
      if (
        status === 404 ||
        status === 405 ||
        (status >= 400 && status < 500 && status !== 409 && status !== 429)
      ) {
        this.owner.requestFailed(
          message,
          `Upstream unreachable: resuming the response stream failed: HTTP ${status}`,
        );
        return;
      }
      // A network error, 409/429, or a 200 that carried nothing: back off, and give up eventually.
      if (++failedAttempts > this.options.maxRestarts) {
        this.owner.requestFailed(
          message,
          `Upstream unreachable: the response stream to request ${String(requestId)} could not be resumed`,
        );
        return;
      }
    }
  }

  /**
   * One GET (standalone stream, or a resume when lastEventId is set), read to its end.
   * Returns the HTTP status (200 when a stream was read), or 0 for a network error.
   */
  private async get(
    stream: SseResponseStream,
    lastEventId: string | undefined,
    standalone: boolean,
    resuming?: StreamedPost,
  ): Promise<number> {
    const headers = this.owner.sessionHeaders();
    headers.accept = 'text/event-stream';
    if (lastEventId !== undefined) headers[Header.LastEventId] = lastEventId;
    const call = new HttpCall();
    this.active.add(call);
    if (standalone) this.standaloneAbort = call;
    if (resuming !== undefined) resuming.resumeCall = call;
    const timer = setTimeout(
      abortForTimeout,
      this.options.connectTimeoutMs,
      call,
      `no response within ${this.options.connectTimeoutMs} ms`,
    );
    try {
      const res = await call.send(this.origin, this.path, 'GET', headers, undefined);
      clearTimeout(timer);
      const type = res.header('content-type') ?? '';
      if (res.status !== 200 || !type.includes('text/event-stream')) {
        res.discard();
        return res.status === 200 ? 415 : res.status;
      }
      await this.read(res, stream);
      return 200;
    } catch (err) {
      clearTimeout(timer);
      if (!this.closed) this.logger.debug(`GET stream failed: ${describeError(err)}`);
      return 0;
    } finally {
      this.active.delete(call);
      if (this.standaloneAbort === call) this.standaloneAbort = undefined;
      if (resuming !== undefined && resuming.resumeCall === call) resuming.resumeCall = undefined;
    }
  }

  /** Opens the standalone GET stream of the current session, unless one runs or none is offered. */
  openStandalone(): void {
    if (this.closed || this.standalone !== 0 || !this.owner.hasSession) return;
    this.standalone = 1;
    void this.runStandalone(this.owner.sessionGeneration);
  }

  /** The session is being replaced: its standalone stream ends (the new one opens its own). */
  stopStandalone(): void {
    if (this.standalone === 1) this.standalone = 0;
    this.standaloneAbort?.abort(new Error('upstream session replaced'));
    this.standaloneAbort = undefined;
  }

  /** Keeps the standalone GET stream open for server-initiated messages, reconnecting as needed. */
  private async runStandalone(generation: number): Promise<void> {
    const stream = new SseResponseStream(this.owner, undefined);
    let failedAttempts = 0;
    while (!this.closed && generation === this.owner.sessionGeneration && this.standalone === 1) {
      stream.parser.reset();
      stream.delivered = 0;
      const openedAt = Date.now();
      const status = await this.get(stream, stream.parser.lastEventId || undefined, true);
      if (this.closed || generation !== this.owner.sessionGeneration) return;
      if (status === 405) {
        this.standalone = 2; // the server offers no GET stream: everything comes on POST streams
        return;
      }
      if (status === 404) {
        this.standalone = 0;
        // The session is gone; re-establish it now so server-initiated messages keep flowing.
        this.owner.sessionGone();
        return;
      }
      // A stream that carried something, asked for a `retry`, or simply lived a while was not a
      // failure (idle proxies cut long streams); one that closes at once, empty, is.
      const useful =
        status === 200 &&
        (stream.delivered > 0 || stream.retryMs !== undefined || Date.now() - openedAt >= STABLE_STREAM_MS);
      if (useful) failedAttempts = 0;
      else if (++failedAttempts > this.options.maxRestarts) {
        this.logger.warn(`Giving up on the standalone GET stream (last status ${status})`);
        this.standalone = 0;
        return;
      }
      const delay =
        useful && stream.retryMs !== undefined
          ? stream.retryMs
          : backoffDelay(failedAttempts, this.options.retryMinMs, this.options.retryMaxMs);
      await this.sleeper.sleep(delay);
    }
  }
}
