import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCode } from '@mcp-gateway/protocol';
import { ResilientTransportError, type FailureReason } from './errors';
import type { ConnectionContext, ConnectionSink, WebSocketLike, WireConnection } from './wire';

/**
 * The gateway's own notifications on a WebSocket (see the gateway's ws-channel.ts): they
 * carry the session id and the sequence position, and never count as messages.
 */
const GatewayMethod = {
  Session: 'notifications/gateway/session',
  Position: 'notifications/gateway/position',
  Ack: 'notifications/gateway/ack',
} as const;

/** Close codes the gateway uses (its src/core/end-reason.ts), and what each means to a client. */
const CLOSE_MEANING: Record<number, { reason: FailureReason; text: string }> = {
  1008: { reason: 'rejected', text: 'the gateway refused the connection (policy)' },
  4001: { reason: 'session-expired', text: 'the session ended on the gateway' },
  4002: { reason: 'session-moved', text: 'another connection took the session over' },
  4004: { reason: 'session-expired', text: 'the session expired or is unknown to the gateway' },
  4009: { reason: 'switch-refused', text: 'the gateway refused the transport switch' },
  4010: {
    reason: 'resume-unavailable',
    text: 'the gateway no longer holds the messages after the resume position',
  },
};

const OPEN = 1;
const SUBPROTOCOL = 'mcp';

/**
 * MCP over the gateway's WebSocket endpoint (`/ws`, subprotocol `mcp`).
 *
 * Position counting: the first frame names the position the connection starts from; each
 * message frame is the next number; a `position` notification re-bases the count (it
 * precedes a re-sent answer whose number is lower).
 */
export class WsConnection implements WireConnection {
  readonly kind = 'ws' as const;
  private socket: WebSocketLike | undefined = undefined;
  /** Sequence number of the last message frame; undefined until the gateway said where we stand. */
  private position: number | undefined = undefined;
  private opened = false;
  private gone = false;
  private lastError: string | undefined = undefined;

  constructor(
    private readonly ctx: ConnectionContext,
    private readonly sink: ConnectionSink,
  ) {}

  open(): Promise<void> {
    const ctx = this.ctx;
    const url = new URL(ctx.service ? `ws/${encodeURIComponent(ctx.service)}` : 'ws', withSlash(ctx.baseUrl));
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const headers: Record<string, string> = { ...ctx.headers };
    // Query parameters too: a browser WebSocket cannot send headers; the gateway reads either.
    if (ctx.clientId !== undefined) url.searchParams.set('client_id', ctx.clientId);
    if (ctx.sessionId !== undefined) {
      headers['mcp-session-id'] = ctx.sessionId;
      headers['last-event-id'] = String(ctx.afterSeq);
      url.searchParams.set('sessionId', ctx.sessionId);
      url.searchParams.set('lastEventId', String(ctx.afterSeq));
    }
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        fail(
          new ResilientTransportError(
            'connect-failed',
            `WebSocket: no session frame within ${ctx.connectTimeoutMs} ms`,
            {
              transport: 'ws',
            },
          ),
        );
      }, ctx.connectTimeoutMs);
      const fail = (err: ResilientTransportError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.gone = true;
        this.destroySocket();
        reject(err);
      };
      const ready = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.opened = true;
        resolve();
      };
      let socket: WebSocketLike;
      try {
        socket = new ctx.WebSocket(url.toString(), SUBPROTOCOL, { headers });
      } catch (err) {
        fail(
          new ResilientTransportError('connect-failed', `WebSocket: ${(err as Error).message}`, {
            transport: 'ws',
            cause: err,
          }),
        );
        return;
      }
      this.socket = socket;
      socket.onmessage = (event) => {
        const hello = this.frame(event.data);
        if (hello !== undefined && !this.opened) {
          if (ctx.sessionId !== undefined && hello !== ctx.sessionId) {
            fail(
              new ResilientTransportError('rejected', `WebSocket: the gateway answered for another session`, {
                transport: 'ws',
              }),
            );
            return;
          }
          this.sink.session(this, hello);
          ready();
        }
      };
      socket.onerror = (event) => {
        // `ws` reports a refused upgrade as "Unexpected server response: 404"; keep it for the close.
        this.lastError = event.message ?? (event.error instanceof Error ? event.error.message : undefined);
      };
      socket.onclose = (event) => {
        const err = this.closeError(event.code, event.reason);
        if (!settled) {
          fail(err);
          return;
        }
        if (this.gone) return;
        this.gone = true;
        this.sink.lost(this, err);
      };
    });
  }

  /** Handles one frame; returns the session id when it was the session (hello) frame. */
  private frame(data: unknown): string | undefined {
    const text =
      typeof data === 'string' ? data : Buffer.isBuffer(data) ? data.toString('utf8') : String(data);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      this.sink.warning(this, new Error(`WebSocket: frame is not JSON: ${(err as Error).message}`));
      return undefined;
    }
    const method = (value as { method?: unknown }).method;
    if (typeof method === 'string' && method.startsWith('notifications/gateway/')) {
      const params = (value as { params?: { sessionId?: unknown; seq?: unknown } }).params ?? {};
      const seq = typeof params.seq === 'number' ? params.seq : undefined;
      if (method === GatewayMethod.Session) {
        this.position = seq;
        return typeof params.sessionId === 'string' ? params.sessionId : undefined;
      }
      if (method === GatewayMethod.Position && seq !== undefined) this.position = seq;
      return undefined;
    }
    if (this.position !== undefined) this.position++;
    this.sink.message(this, value, this.position);
    return undefined;
  }

  private closeError(code: number, reason: string): ResilientTransportError {
    const meaning = CLOSE_MEANING[code];
    const detail = reason ? `: ${reason}` : '';
    if (meaning) {
      return new ResilientTransportError(
        meaning.reason,
        `WebSocket closed ${code}, ${meaning.text}${detail}`,
        {
          transport: 'ws',
          closeCode: code,
          rpcCode: code === 4009 ? ErrorCode.TransportSwitchRefused : undefined,
        },
      );
    }
    const status = /Unexpected server response: (\d+)/.exec(this.lastError ?? '')?.[1];
    const why = this.lastError ? ` (${this.lastError})` : '';
    return new ResilientTransportError(
      this.opened ? 'connection-lost' : 'connect-failed',
      `WebSocket closed ${code}${detail}${why}`,
      { transport: 'ws', closeCode: code, status: status === undefined ? undefined : Number(status) },
    );
  }

  async send(message: JSONRPCMessage): Promise<boolean> {
    const socket = this.socket;
    if (!socket || this.gone || socket.readyState !== OPEN) return false;
    try {
      socket.send(JSON.stringify(message));
      return true;
    } catch {
      return false;
    }
  }

  ack(seq: number): void {
    const socket = this.socket;
    if (!socket || this.gone || socket.readyState !== OPEN) return;
    socket.send(`{"jsonrpc":"2.0","method":"${GatewayMethod.Ack}","params":{"seq":${seq}}}`);
  }

  async close(endSession: boolean): Promise<void> {
    this.gone = true;
    const socket = this.socket;
    if (!socket) return;
    // 1000 ends the gateway session; 4000 (private use) leaves it resumable.
    try {
      socket.close(endSession ? 1000 : 4000, endSession ? 'client closed' : 'client switching connection');
    } catch {
      this.destroySocket();
    }
  }

  drop(): void {
    this.destroySocket();
  }

  private destroySocket(): void {
    const socket = this.socket;
    if (!socket) return;
    try {
      if (typeof socket.terminate === 'function') socket.terminate();
      else socket.close(4000, 'dropped');
    } catch {
      // already closed
    }
  }
}

/** A base URL whose path ends with "/", so relative endpoint paths append instead of replacing. */
export function withSlash(base: URL): URL {
  const url = new URL(base.toString());
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  url.search = '';
  url.hash = '';
  return url;
}
