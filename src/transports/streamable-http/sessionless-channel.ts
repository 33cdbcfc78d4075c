import type { ServerResponse } from 'node:http';
import {
  ErrorCode,
  errorResponse,
  isNotification,
  isResponse,
  Method,
  SESSIONLESS_PROTOCOL,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcRequest,
} from '../../../libs/protocol/src';
import type { ChannelListener, ClientChannel } from '../../session/client-channel';
import { STANDALONE_STREAM, type Session } from '../../session/session';
import type { KeepAliveTarget } from '../http/keep-alive-ticker';
import { SSE_HEADERS } from '../http/sse-channel';
import type { BridgeEntry } from './sessionless-bridge';
import type { SessionlessHandler } from './sessionless.handler';

export const META_SERVER_INFO = 'io.modelcontextprotocol/serverInfo';

/** Results that 2026-07-28 requires to carry ttlMs / cacheScope (CacheableResult). */
const CACHEABLE = new Set([
  'tools/list',
  'prompts/list',
  'resources/list',
  'resources/read',
  'resources/templates/list',
]);

/** Server→client requests and the client capability each needs. */
const CAPABILITY_OF: Record<string, string> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

/** Upstream errors whose 2026-07-28 HTTP status is not 200. */
function statusOfError(code: unknown): number {
  switch (code) {
    case ErrorCode.MethodNotFound:
      return 404; // an unknown method is 404, so clients can tell it from other errors
    case ErrorCode.HeaderMismatch:
    case ErrorCode.MissingClientCapability:
    case ErrorCode.UnsupportedProtocolVersion:
      return 400;
    default:
      return 200;
  }
}

/**
 * One sessionless request's response: JSON when the answer comes first, SSE (no event ids)
 * otherwise. It is one stream of the hidden session; the request runs under a gateway id from
 * the handler's request multiplexer, which puts the client's id and progress token back on
 * what comes down.
 */
export class SessionlessChannel implements ClientChannel, KeepAliveTarget {
  readonly kind = 'streamable' as const;
  listener: ChannelListener | undefined = undefined;
  closed = false;
  lastWrite = Date.now();
  private streaming = false;
  private answered = false;
  /** A write said "full": the session may have paused the upstream until this response drains. */
  private blocked = false;

  /** The id the request runs under in the hidden session (set by the handler when it carries it). */
  gatewayId = '';

  get bufferedBytes(): number {
    return this.res.writableLength;
  }

  constructor(
    private readonly handler: SessionlessHandler,
    readonly res: ServerResponse,
    readonly entry: BridgeEntry,
    readonly session: Session,
    readonly serverInfo: unknown,
    readonly method: string,
    /** The client's own id: what the gateway's own error answers for this request carry. */
    readonly clientId: JsonRpcId,
    readonly wantsLogs: boolean,
    readonly capabilities: Record<string, unknown>,
  ) {
    res.on('close', onSessionlessClose.bind(this));
    res.on('drain', onSessionlessDrain.bind(this));
  }

  send(_seq: number, _stream: number, raw: string): boolean {
    if (this.closed) return false;
    // Nothing here is ever resumed (2026-07-28 has no Last-Event-ID): drop what was delivered.
    this.session.ackAll();
    const m = JSON.parse(raw) as Record<string, unknown> & JsonRpcMessage;
    if (isResponse(m)) {
      // The client's id back in place of the gateway id (the session routes to this stream only
      // the answer to its one request); the multiplexer forgets the request.
      this.handler.requests.answer(m);
      const result = (m as { result?: unknown }).result;
      if (result !== null && typeof result === 'object' && !Array.isArray(result)) {
        if (this.method === 'tools/list') this.handler.tools.note(this.entry, result);
        this.decorate(result);
      }
      const error = (m as { error?: { code?: unknown; data?: { retryAfterMs?: unknown } } }).error;
      const retryAfterMs = error?.code === ErrorCode.Overloaded ? error.data?.retryAfterMs : undefined;
      if (typeof retryAfterMs === 'number' && retryAfterMs > 0) {
        // Refused before it ran (pool exhausted, in-flight bound): HTTP's own "later", 429 + Retry-After.
        this.finish(JSON.stringify(m), 429, String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
      } else {
        this.finish(JSON.stringify(m), error ? statusOfError(error.code) : 200);
      }
      return true;
    }
    if (isNotification(m)) {
      if (m.method === Method.Progress) {
        // Only this request's own progress, with the client's token put back.
        if (this.handler.requests.progress(m)?.owner !== this) return true;
      } else if (m.method === 'notifications/message') {
        // 2026-07-28: log messages only for requests that asked for them (_meta logLevel).
        if (!this.wantsLogs) return true;
      } else {
        // Only notifications about this request belong on its stream; the rest (list_changed,
        // resources/updated) reached this stream only because it was the one request in flight.
        this.handler.subscriptions.upstreamNotification(this.entry, m);
        return true;
      }
      return this.event(JSON.stringify(m));
    }
    this.serverRequest(m as JsonRpcRequest);
    return true;
  }

  /**
   * A server→client request on a bridged request. 2026-07-28 has no such requests on the wire
   * (they become input_required results, MRTR); the bridge does not translate them yet, so the
   * upstream gets an error, and a client that lacks the capability gets −32021.
   */
  private serverRequest(req: JsonRpcRequest): void {
    const capability = CAPABILITY_OF[req.method];
    if (req.method === Method.Ping) {
      this.session.receive({ jsonrpc: '2.0', id: req.id, result: {} }, undefined, STANDALONE_STREAM);
      return;
    }
    this.session.receive(
      errorResponse(
        req.id,
        capability ? ErrorCode.InternalError : ErrorCode.MethodNotFound,
        capability
          ? `${req.method} cannot reach a ${SESSIONLESS_PROTOCOL} client through this gateway (multi round-trip requests are not bridged)`
          : `Method not found: ${req.method}`,
      ),
      undefined,
      STANDALONE_STREAM,
    );
    if (capability && this.capabilities[capability] === undefined) {
      this.handler.deps.metrics.error('missing_client_capability');
      this.cancelUpstream('the client lacks a required capability');
      this.finish(
        JSON.stringify(
          errorResponse(
            this.clientId,
            ErrorCode.MissingClientCapability,
            `Missing required client capability: ${capability}`,
            {
              requiredCapabilities: { [capability]: {} },
            },
          ),
        ),
        400,
      );
    }
  }

  /** Adds what 2026-07-28 requires of every result that older upstreams do not send. */
  private decorate(result: object): void {
    const r = result as Record<string, unknown>;
    if (r.resultType === undefined) r.resultType = 'complete';
    if (this.serverInfo !== undefined) {
      let meta = r._meta as Record<string, unknown> | undefined;
      if (meta === null || typeof meta !== 'object') meta = r._meta = {};
      if (meta[META_SERVER_INFO] === undefined) meta[META_SERVER_INFO] = this.serverInfo;
    }
    if (CACHEABLE.has(this.method)) {
      if (r.ttlMs === undefined) r.ttlMs = 0;
      if (r.cacheScope === undefined) r.cacheScope = 'private';
    }
  }

  private event(data: string): boolean {
    const res = this.res;
    if (!this.streaming) {
      this.streaming = true;
      res.writeHead(200, SSE_HEADERS);
      this.handler.deps.keepAlive?.add(this);
    }
    this.lastWrite = Date.now();
    if (res.write(`event: message\ndata: ${data}\n\n`)) return true;
    this.blocked = true;
    return false;
  }

  /**
   * The response took what was buffered, or no longer takes anything from the session (answered
   * or gone): let the session resume the upstream it may have paused for this response. Goes to
   * the session directly: after the answer the session has already let go of this channel.
   */
  unblock(): void {
    if (!this.blocked) return;
    this.blocked = false;
    this.session.channelDrained(this);
  }

  keepAlive(): void {
    if (!this.closed && this.streaming) {
      this.lastWrite = Date.now();
      this.res.write(': keep-alive\n\n');
    }
  }

  /** Writes the final answer and ends the response (the answer terminates the stream). */
  private finish(body: string, status: number, retryAfter?: string): void {
    if (this.answered) return;
    this.answered = true;
    this.closed = true;
    this.handler.requests.forget(this.gatewayId); // answered, or ended by the gateway
    const res = this.res;
    if (this.streaming) {
      this.handler.deps.keepAlive?.delete(this);
      res.end(`event: message\ndata: ${body}\n\n`);
    } else if (!res.headersSent) {
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
      };
      if (retryAfter !== undefined) headers['retry-after'] = retryAfter;
      res.writeHead(status, headers);
      res.end(body);
    } else {
      res.end();
    }
    // What is still buffered is this response's own tail (no 'drain' comes after end()): the
    // upstream need not wait for it.
    this.unblock();
  }

  end(): void {
    // The session ends the stream right after the answer, which finish() already wrote.
    if (!this.answered) this.close(502, 'the upstream ended the request without an answer');
  }

  close(code: number, reason: string): void {
    if (this.answered) return;
    const status = code >= 400 && code < 600 ? code : 502;
    this.finish(JSON.stringify(errorResponse(this.clientId, ErrorCode.UpstreamUnavailable, reason)), status);
  }

  /** The client went away before the answer: that is the cancellation signal in 2026-07-28. */
  clientClosed(): void {
    this.handler.deps.keepAlive?.delete(this);
    this.unblock();
    if (this.answered) return;
    this.answered = true;
    this.closed = true;
    this.handler.deps.metrics.error('client_cancelled');
    this.cancelUpstream('the client closed the response stream');
  }

  private cancelUpstream(reason: string): void {
    const listener = this.listener;
    this.listener = undefined;
    listener?.channelClosed(this);
    // A cancelled request gets no answer from a conforming server: stop waiting for it so it does
    // not count against the in-flight bound forever, and tell the upstream (the session's port
    // maps the cancellation on, as it does any client's). A late answer is dropped.
    this.handler.requests.forget(this.gatewayId);
    this.session.abandonRequest(this.gatewayId, reason);
  }
}

function onSessionlessClose(this: SessionlessChannel): void {
  this.clientClosed();
}

function onSessionlessDrain(this: SessionlessChannel): void {
  this.unblock();
}
