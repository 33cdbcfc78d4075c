import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { parseEventId, type SseHandler } from '@mcp-gateway/protocol';
import { connectionFailure, isConnectionRefusal, ResilientTransportError } from './errors';
import { errorBody, header, httpRefusal, networkError, readEventStream } from './http-stream';
import { isRequestMessage, isResponseMessage } from './pending-requests';
import type { ConnectionContext, ConnectionSink, WireConnection } from './wire';
import { withSlash } from './ws-connection';

const STANDALONE_STREAM = 0;

interface Exchange {
  response: Response;
  /** The body has been read (or given up on). */
  done: () => void;
}

/**
 * MCP Streamable HTTP against the gateway's `/mcp` endpoint.
 *
 * One "connection" here is a set of HTTP exchanges that live and die together: the
 * standalone GET stream, the response streams of POSTs, and GETs that resume POST streams.
 * Any of them breaking counts as the connection being lost, so the transport resumes
 * everything at once from one position instead of patching streams one by one.
 *
 * Every SSE event id is `<stream>_<seq>`: the sequence number feeds de-duplication, the
 * stream number is what a cut POST stream is resumed by (GET, `Last-Event-ID: <stream>_<seq>`).
 */
export class StreamableConnection implements WireConnection {
  readonly kind = 'streamable' as const;
  private readonly endpoint: URL;
  /** Exchanges whose response is still being read. */
  private readonly live = new Set<AbortController>();
  private sessionId: string | undefined;
  private gone = false;

  constructor(
    private readonly ctx: ConnectionContext,
    private readonly sink: ConnectionSink,
  ) {
    const base = withSlash(ctx.baseUrl);
    this.endpoint = new URL(ctx.service ? `mcp/${encodeURIComponent(ctx.service)}` : 'mcp', base);
    this.sessionId = ctx.sessionId;
  }

  /**
   * With a session: opens the standalone GET from the resume position (a bare sequence
   * number: everything of the standalone stream after it — for a session that came from
   * WebSocket or SSE that is every message) and resumes each POST stream that still owes
   * an answer. Without one there is nothing to open: the session is created by `initialize`.
   */
  async open(): Promise<void> {
    if (this.sessionId === undefined) return;
    const after = this.ctx.afterSeq;
    await this.openGet(STANDALONE_STREAM, String(after));
    await Promise.all(this.ctx.streams.map((stream) => this.openGet(stream, `${stream}_${after}`)));
  }

  private async openGet(stream: number, lastEventId: string | undefined): Promise<void> {
    const headers = this.headers({ accept: 'text/event-stream' });
    if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
    let exchange: Exchange;
    try {
      exchange = await this.fetchHeaders(this.endpoint, { method: 'GET', headers });
    } catch (err) {
      throw networkError('streamable', 'GET', err, 'connect-failed');
    }
    const response = exchange.response;
    if (!response.ok) {
      const err = await httpRefusal('streamable', 'GET', response, true);
      exchange.done();
      throw err;
    }
    void this.read(exchange, stream, undefined);
  }

  async send(message: JSONRPCMessage): Promise<boolean> {
    if (this.gone) return false;
    const request = isRequestMessage(message) ? message : undefined;
    const hadSession = this.sessionId !== undefined;
    let exchange: Exchange;
    try {
      exchange = await this.fetchHeaders(this.endpoint, {
        method: 'POST',
        headers: this.headers({
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        }),
        body: JSON.stringify(message),
      });
    } catch (err) {
      this.fail(networkError('streamable', 'POST', err, 'connection-lost'));
      return false;
    }
    const response = exchange.response;
    const sessionId = header(response, 'mcp-session-id');
    const created = !hadSession && sessionId !== undefined && this.sessionId === undefined;
    if (created) {
      this.sessionId = sessionId;
      this.sink.session(this, sessionId);
    }
    if (response.status === 202) {
      exchange.done();
      await response.body?.cancel().catch(() => undefined);
      if (request) this.sink.confirmed(this, request.id, undefined);
      return true;
    }
    if (!response.ok) {
      const handled = await this.refused(response, request, hadSession);
      exchange.done();
      return handled;
    }

    const type = header(response, 'content-type') ?? '';
    if (type.includes('text/event-stream')) {
      if (request) this.sink.confirmed(this, request.id, undefined);
      void this.read(exchange, undefined, request?.id);
    } else {
      let body: unknown;
      try {
        body = await response.json();
      } catch (err) {
        this.fail(networkError('streamable', 'POST', err, 'connection-lost'));
        return false;
      } finally {
        exchange.done();
      }
      if (request) this.sink.confirmed(this, request.id, undefined);
      for (const m of Array.isArray(body) ? body : [body]) {
        // A plain JSON answer has no event id. The one that creates a session (initialize) is
        // the session's first message, so its number is known to be 1; recording it keeps the
        // resume position from sticking at 0.
        const seq =
          created && request?.method === 'initialize' && isResponseMessage(m as JSONRPCMessage)
            ? 1
            : undefined;
        this.sink.message(this, m, seq);
      }
    }
    if (created) this.openStandaloneInBackground();
    return true;
  }

  /** A new session's standalone stream, for messages not tied to a request. */
  private openStandaloneInBackground(): void {
    this.openGet(STANDALONE_STREAM, undefined).catch((err: unknown) => {
      this.fail(
        err instanceof ResilientTransportError
          ? err
          : networkError('streamable', 'GET', err, 'connection-lost'),
      );
    });
  }

  /** The gateway answered a POST with an error status. */
  private async refused(
    response: Response,
    request: { id: RequestId } | undefined,
    hadSession: boolean,
  ): Promise<boolean> {
    const status = response.status;
    if (isConnectionRefusal(status)) {
      const err = await httpRefusal('streamable', 'POST', response, hadSession);
      // Overload and server errors are worth a reconnect (with backoff), not a failed request.
      this.fail(connectionFailure(err, 'streamable', status));
      return false;
    }
    // Anything else is about this message (bad request, too large): answer the request with it.
    const { code, message } = await errorBody(response);
    const text = message ?? `HTTP ${status}`;
    if (request) {
      this.sink.message(
        this,
        { jsonrpc: '2.0', id: request.id, error: { code: code ?? -32603, message: text } },
        undefined,
      );
    } else {
      this.sink.warning(this, new Error(`Streamable HTTP: the gateway refused a message: ${text}`));
    }
    return true;
  }

  /** Reads one SSE response; `stream` is known for GETs, learned from event ids for POSTs. */
  private async read(
    exchange: Exchange,
    stream: number | undefined,
    requestId: RequestId | undefined,
  ): Promise<void> {
    let current = stream;
    const handler: SseHandler = {
      sseEvent: (data, event, eventId) => {
        if (this.gone || event !== 'message') return;
        const id = parseEventId(eventId);
        if (id?.stream !== undefined && current === undefined) {
          current = id.stream;
          if (requestId !== undefined) this.sink.confirmed(this, requestId, current);
        }
        // A priming event (2025-11-25) names the stream and the session's position at the time,
        // which may be a message of another stream: it is not a message and its number is not ours.
        if (data.trim() === '') return;
        let value: unknown;
        try {
          value = JSON.parse(data);
        } catch (err) {
          this.sink.warning(this, new Error(`Streamable HTTP: event is not JSON: ${(err as Error).message}`));
          return;
        }
        this.sink.message(this, value, id?.seq);
      },
      sseRetry: () => {},
    };
    try {
      await readEventStream(exchange.response, handler);
    } catch (err) {
      if (!this.gone) this.fail(networkError('streamable', 'stream', err, 'connection-lost'));
      return;
    } finally {
      exchange.done();
    }
    if (this.gone) return;
    if (stream === STANDALONE_STREAM) {
      // The gateway ends the standalone stream only when it replaces or closes it: reconnect to find out which.
      this.fail(
        new ResilientTransportError('connection-lost', 'Streamable HTTP: the gateway ended the GET stream', {
          transport: 'streamable',
        }),
      );
    } else if (current !== undefined) {
      this.sink.streamEnded(this, current);
    }
  }

  async close(endSession: boolean): Promise<void> {
    if (this.gone) return;
    this.gone = true;
    if (endSession && this.sessionId !== undefined) {
      // The spec's way to end a session; best effort, bounded, and never fatal.
      await this.ctx
        .fetch(this.endpoint, {
          method: 'DELETE',
          headers: this.headers({}),
          signal: AbortSignal.timeout(Math.min(this.ctx.connectTimeoutMs, 2000)),
        })
        .then((r) => r.body?.cancel())
        .catch(() => undefined);
    }
    this.abortAll();
  }

  drop(): void {
    // Aborting makes undici destroy the sockets of every exchange still open; the read
    // loops then fail and report the loss, as with a real network failure.
    this.abortAll();
  }

  private fail(err: ResilientTransportError): void {
    if (this.gone) return;
    this.gone = true;
    this.abortAll();
    this.sink.lost(this, err);
  }

  private headers(extra: Record<string, string>): Record<string, string> {
    const h: Record<string, string> = { ...this.ctx.headers, ...extra };
    if (this.sessionId !== undefined) h['mcp-session-id'] = this.sessionId;
    if (this.ctx.protocolVersion !== undefined) h['mcp-protocol-version'] = this.ctx.protocolVersion;
    return h;
  }

  /**
   * fetch() bounded until the response headers arrive; the body may then stream for as long
   * as it likes (a timeout signal on the request itself would also cut the body). Each
   * exchange has its own AbortController, kept in `live` until its body is done, so that
   * drop()/close() can cut everything still open.
   */
  private async fetchHeaders(url: URL, init: RequestInit): Promise<Exchange> {
    const controller = new AbortController();
    if (this.gone) controller.abort();
    this.live.add(controller);
    const done = () => this.live.delete(controller);
    const timer = setTimeout(
      () => controller.abort(new Error(`no response within ${this.ctx.connectTimeoutMs} ms`)),
      this.ctx.connectTimeoutMs,
    );
    try {
      const response = await this.ctx.fetch(url, { ...init, signal: controller.signal });
      return { response, done };
    } catch (err) {
      done();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private abortAll(): void {
    for (const controller of this.live) controller.abort();
    this.live.clear();
  }
}
