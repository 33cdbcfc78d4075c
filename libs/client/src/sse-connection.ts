import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCode, type SseHandler } from '@mcp-gateway/protocol';
import { connectionFailure, isConnectionRefusal, ResilientTransportError } from './errors';
import { errorBody, httpRefusal, networkError, readEventStream } from './http-stream';
import { isRequestMessage } from './pending-requests';
import type { ConnectionContext, ConnectionSink, WireConnection } from './wire';
import { withSlash } from './ws-connection';

/**
 * The legacy HTTP+SSE transport (protocol 2024-11-05) against the gateway's `/sse`:
 * a GET stream that first names the POST endpoint (`endpoint` event) and then carries every
 * server→client message with `id: <sessionId>.<seq>`; client messages are POSTed to the
 * endpoint. Resuming is a new GET with `Last-Event-ID: <sessionId>.<seq>`.
 */
export class SseConnection implements WireConnection {
  readonly kind = 'sse' as const;
  private readonly abort = new AbortController();
  private endpoint: URL | undefined = undefined;
  private gone = false;
  private opened = false;

  constructor(
    private readonly ctx: ConnectionContext,
    private readonly sink: ConnectionSink,
  ) {}

  async open(): Promise<void> {
    const ctx = this.ctx;
    const url = new URL(
      ctx.service ? `sse/${encodeURIComponent(ctx.service)}` : 'sse',
      withSlash(ctx.baseUrl),
    );
    const headers: Record<string, string> = { ...ctx.headers, accept: 'text/event-stream' };
    if (ctx.sessionId !== undefined) headers['last-event-id'] = `${ctx.sessionId}.${ctx.afterSeq}`;
    const timer = setTimeout(
      () => this.abort.abort(new Error(`no endpoint event within ${ctx.connectTimeoutMs} ms`)),
      ctx.connectTimeoutMs,
    );
    try {
      let response: Response;
      try {
        response = await ctx.fetch(url, { method: 'GET', headers, signal: this.abort.signal });
      } catch (err) {
        throw networkError('sse', 'GET', err, 'connect-failed');
      }
      if (!response.ok) throw await httpRefusal('sse', 'GET', response, ctx.sessionId !== undefined);
      await new Promise<void>((resolve, reject) => {
        const handler: SseHandler = {
          sseEvent: (data, event, id) => {
            if (this.gone) return;
            if (event === 'endpoint') {
              this.endpoint = new URL(data.trim(), url);
              const sessionId = this.endpoint.searchParams.get('sessionId');
              if (!this.opened) {
                this.opened = true;
                if (sessionId) this.sink.session(this, sessionId);
                resolve();
              }
              return;
            }
            if (event === 'error') {
              this.fail(this.errorEvent(data));
              return;
            }
            if (event !== 'message' || data.trim() === '') return;
            this.message(data, id);
          },
          sseRetry: () => {},
        };
        readEventStream(response, handler).then(
          () => this.ended(reject),
          (err: unknown) => {
            const error = networkError(
              'sse',
              'stream',
              err,
              this.opened ? 'connection-lost' : 'connect-failed',
            );
            if (this.opened) this.fail(error);
            else reject(error);
          },
        );
      });
    } catch (err) {
      this.gone = true;
      this.abort.abort();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private message(data: string, eventId: string | undefined): void {
    // `<sessionId>.<seq>`: the number after the last dot.
    const id = eventId ?? '';
    const dot = id.lastIndexOf('.');
    const text = dot === -1 ? id : id.slice(dot + 1);
    const seq = /^\d{1,15}$/.test(text) ? Number(text) : undefined;
    let value: unknown;
    try {
      value = JSON.parse(data);
    } catch (err) {
      this.sink.warning(this, new Error(`SSE: event is not JSON: ${(err as Error).message}`));
      return;
    }
    this.sink.message(this, value, seq);
  }

  private ended(reject: (err: Error) => void): void {
    const err = new ResilientTransportError('connection-lost', 'SSE: the gateway ended the stream', {
      transport: 'sse',
    });
    if (this.opened) this.fail(err);
    else {
      this.gone = true;
      reject(
        new ResilientTransportError('connect-failed', 'SSE: the stream ended before the endpoint event', {
          transport: 'sse',
        }),
      );
    }
  }

  /** The gateway's `error` event (sent before it ends a stream it cannot resume). */
  private errorEvent(data: string): ResilientTransportError {
    let code: number | undefined;
    let message = data;
    try {
      const body = JSON.parse(data) as { code?: unknown; message?: unknown };
      if (typeof body.code === 'number') code = body.code;
      if (typeof body.message === 'string') message = body.message;
    } catch {
      // plain text
    }
    const reason =
      code === ErrorCode.ResumeUnavailable
        ? 'resume-unavailable'
        : code === ErrorCode.SessionNotFound
          ? 'session-expired'
          : code === ErrorCode.TransportSwitchRefused
            ? 'switch-refused'
            : 'connection-lost';
    return new ResilientTransportError(reason, `SSE: ${message}`, { transport: 'sse', rpcCode: code });
  }

  async send(message: JSONRPCMessage): Promise<boolean> {
    const endpoint = this.endpoint;
    if (this.gone || !endpoint) return false;
    const request = isRequestMessage(message) ? message : undefined;
    let response: Response;
    try {
      response = await this.ctx.fetch(endpoint, {
        method: 'POST',
        headers: { ...this.ctx.headers, 'content-type': 'application/json' },
        body: JSON.stringify(message),
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.ctx.connectTimeoutMs)]),
      });
    } catch (err) {
      this.fail(networkError('sse', 'POST', err, 'connection-lost'));
      return false;
    }
    if (response.ok) {
      await response.body?.cancel().catch(() => undefined);
      if (request) this.sink.confirmed(this, request.id, undefined);
      return true;
    }
    const status = response.status;
    if (isConnectionRefusal(status)) {
      const err = await httpRefusal('sse', 'POST', response, true);
      this.fail(connectionFailure(err, 'sse', status));
      return false;
    }
    const { code, message: text } = await errorBody(response);
    if (request) {
      this.sink.message(
        this,
        {
          jsonrpc: '2.0',
          id: request.id,
          error: { code: code ?? -32603, message: text ?? `HTTP ${status}` },
        },
        undefined,
      );
    } else {
      this.sink.warning(this, new Error(`SSE: the gateway refused a message: ${text ?? `HTTP ${status}`}`));
    }
    return true;
  }

  async close(): Promise<void> {
    // The legacy transport has no way to end a session: the gateway lets it idle out.
    this.gone = true;
    this.abort.abort();
  }

  drop(): void {
    this.abort.abort();
  }

  private fail(err: ResilientTransportError): void {
    if (this.gone) return;
    this.gone = true;
    this.abort.abort();
    if (this.opened) this.sink.lost(this, err);
  }
}
