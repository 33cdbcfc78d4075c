import { STATUS_CODES, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCode, errorResponse } from '../../libs/protocol/src/jsonrpc';
import type { ClientTransport } from '../core/transport-kind';
import { correlationIdFrom } from '../telemetry/logging/log-fields';
import { sendJsonRpcError } from './http/http-reply';

/**
 * Where client input enters the gateway; internal errors are counted by it:
 * `mcp` — /mcp (Streamable HTTP, sessionless included), `sse` — GET /sse, `messages` —
 * POST /messages, `ws_upgrade` — a WebSocket handshake, `ws_message` — a WebSocket frame.
 */
export type EntryPoint = 'mcp' | 'sse' | 'messages' | 'ws_upgrade' | 'ws_message';

export interface BoundaryMetrics {
  internalError(entry: EntryPoint): void;
}

/** Told of each internal error as a failure of its client transport (the transport's breaker). */
export interface BoundaryOutcomes {
  record(kind: ClientTransport, ok: boolean): void;
}

const TRANSPORT_OF: Record<EntryPoint, ClientTransport> = {
  mcp: 'streamable',
  sse: 'sse',
  messages: 'sse',
  ws_upgrade: 'ws',
  ws_message: 'ws',
};

export interface BoundaryLogger {
  /** A Nest logger: the fields object, then the message. */
  error(fields: unknown, message?: string): void;
}

/** What a WebSocket boundary closes: a channel or a bare socket (both take a code and a reason). */
export interface Closable {
  close(code: number, reason: string): void;
}

/** RFC 6455 1011: the server hit an unexpected condition. */
const WS_INTERNAL_ERROR = 1011;

/**
 * One error boundary per raw entry point (CONVENTIONS 16). Whatever throws below a route, an
 * upgrade, a frame handler or one of their async continuations ends here, never as an
 * unhandled rejection or uncaught exception: the client gets an answer (HTTP 500 with a
 * JSON-RPC −32603 body while no header is out, else the stream ends; a WebSocket closes 1011),
 * one log line carries a correlation id (also in the answer, so a user can quote it), and
 * `internalErrors` counts it by entry point. Only the error path allocates.
 */
export class ErrorBoundary {
  constructor(
    readonly entry: EntryPoint,
    private readonly metrics: BoundaryMetrics,
    private readonly log: BoundaryLogger,
    private readonly outcomes?: BoundaryOutcomes,
  ) {}

  /**
   * An HTTP request failed below the entry point. `sessionId` goes into the log line when known;
   * the caller's sane `x-request-id` (the request's `headers`) is the correlation id, as in the
   * session's own lines about the request.
   */
  http(res: ServerResponse, err: unknown, sessionId?: string, headers?: IncomingHttpHeaders): void {
    const correlationId = this.record(err, sessionId, headers);
    try {
      if (!res.headersSent) {
        sendJsonRpcError(res, 500, ErrorCode.InternalError, 'Internal error', {
          data: { correlationId },
          headers: { connection: 'close' },
        });
      } else {
        res.end();
      }
    } catch {
      res.destroy();
    }
  }

  /** A WebSocket handshake failed before the 101: an HTTP 500 on the raw socket, then it closes. */
  upgrade(socket: Duplex, err: unknown): void {
    const correlationId = this.record(err, undefined);
    // Node removed its own error handler when it handed the socket over: a reset must not go unhandled.
    socket.on('error', destroySocket);
    try {
      if (!socket.writable) {
        socket.destroy();
        return;
      }
      const body = JSON.stringify(
        errorResponse(null, ErrorCode.InternalError, 'Internal error', { correlationId }),
      );
      socket.end(
        `HTTP/1.1 500 ${STATUS_CODES[500]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    } catch {
      socket.destroy();
    }
  }

  /** A WebSocket connection failed after the 101: close 1011 (the session stays resumable). */
  ws(target: Closable, err: unknown, sessionId?: string): void {
    this.record(err, sessionId);
    try {
      target.close(WS_INTERNAL_ERROR, 'internal error');
    } catch {
      // Closing an already broken socket: nothing more to tell the client.
    }
  }

  private record(err: unknown, sessionId: string | undefined, headers?: IncomingHttpHeaders): string {
    const correlationId = correlationIdFrom(headers);
    this.metrics.internalError(this.entry);
    this.outcomes?.record(TRANSPORT_OF[this.entry], false);
    const e = err instanceof Error ? err : new Error(String(err));
    // Structured fields first (the JSON line carries them as keys), then the text a reader sees.
    this.log.error(
      { correlationId, sessionId, err: e },
      `internal error at ${this.entry} (correlationId=${correlationId}${
        sessionId === undefined ? '' : `, sessionId=${sessionId}`
      }): ${e.name}: ${e.message}`,
    );
    return correlationId;
  }
}

function destroySocket(this: Duplex): void {
  this.destroy();
}
