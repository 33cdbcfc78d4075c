import { isUtf8 } from 'node:buffer';
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { allowsBatches } from '../../../libs/protocol/src/mcp';
import {
  ErrorCode,
  errorResponse,
  parseJsonRpc,
  refusalKind,
  type JsonRpcId,
  type JsonRpcMessage,
} from '../../../libs/protocol/src/jsonrpc';
import type { GatewayMetrics } from '../../telemetry/gateway-metrics.service';
import { ResumeUnavailableError, STANDALONE_STREAM, type Session } from '../../session/session';
import type { SessionRegistry } from '../../session/session-registry';
import type { Admission as PolicyAdmission } from '../../policy/admission';
import type { Identity } from '../../policy/identity';
import { refusalResponse, type MessagePolicy } from '../../policy/message-policy';
import { ANONYMOUS_CLIENT } from '../../core/client-id';
import { ErrorBoundary } from '../error-boundary';
import { GatewayMethod, type GatewaySocket, WsChannel, type WsChannelOwner } from './ws-channel';
import { WsClose, WsCloseFromClient } from './ws-close-codes';

export interface WsSettings {
  /** One shared ping interval; 0 turns the heartbeat off. */
  heartbeatIntervalMs: number;
  /** Buffered bytes per connection above which `send` says "stop" and the session pauses its upstream. */
  highWaterMark: number;
  /** Deepest JSON nesting accepted in a frame (deeper → a −32600 answer; the connection stays). */
  maxJsonDepth: number;
}

export interface WsLogger {
  warn(message: unknown, context?: string): void;
  error(message: unknown, stack?: string): void;
}

/** What upgrade admission (ws-upgrade.ts) hands over with a connection that completed its handshake. */
export interface Admitted {
  socket: Duplex;
  clientId: string;
  /** When the credential the connection was admitted with expires (epoch ms), if it does. */
  expiresAt?: number;
  /** What it was admitted as, when authentication is on: the connection closes when that is revoked. */
  identity: Identity | undefined;
  /** The upgrade request's headers (a service may route on one). */
  headers: IncomingHttpHeaders;
  /** The session resumed, when the client named one that exists and is its own. */
  resume: Session | undefined;
  /** Resume position from Last-Event-ID / lastEventId. */
  afterSeq: number | undefined;
  /** Set when the connection must be closed right after the handshake (browsers only see close codes). */
  refusal: { code: number; reason: string } | undefined;
  /** The session created or resumed when the 101 went out. */
  session: Session | undefined;
}

/**
 * The WebSocket data path: every admitted connection, its frames, the shared heartbeat and the
 * connections' shutdown. Upgrade admission (ws-upgrade.ts) hands each connection to `open`.
 *
 * Not the Nest WsAdapter's message dispatch / @SubscribeMessage: those run Nest's context
 * machinery (guards, pipes, interceptors, an Observable) for every frame and route by a message
 * `event` field MCP does not have. Frames go straight from `ws` to the session.
 *
 * Choices (SEP-1288 is a draft; we follow it where the SDK client still works):
 * - text frames, and binary frames that hold UTF-8 JSON (SEP-1288 closes 1003 on binary;
 *   accepting them costs one UTF-8 check and helps clients that send bytes).
 * - one message per frame; batches only when the session's protocol version has them.
 * - a resume elsewhere closes the older connection with 4002 (SEP-1288: 1000), so a
 *   client can tell "taken over" from "finished".
 */
export class WsServer implements WsChannelOwner {
  private readonly channels = new Set<WsChannel>();
  /** Connections admitted with an expiring credential (a JWT): closed by the heartbeat sweep once it expires. */
  private readonly expiring = new Map<WsChannel, number>();
  private heartbeatTimer: NodeJS.Timeout | undefined = undefined;
  private readonly onHeartbeat = (): void => this.heartbeat();
  /** Resolves shutdown once the last connection is gone. */
  private whenEmpty: (() => void) | undefined = undefined;
  /** What throws while a frame is handled: the connection closes 1011, the session stays resumable. */
  private readonly frameBoundary: ErrorBoundary;

  constructor(
    private readonly settings: WsSettings,
    private readonly sessions: SessionRegistry,
    private readonly metrics: GatewayMetrics,
    log: WsLogger,
    /** Authentication (src/policy): watches admitted identities for revocation; absent: no checks. */
    private readonly policy?: PolicyAdmission,
    /** Per-message policy (rate limits, authorization); refusals are answered in-band. */
    private readonly messagePolicy?: MessagePolicy,
  ) {
    // The cap of S3 allocate_connections(ws) counts live WebSocket connections.
    sessions.transportGuard?.measure('ws', () => this.channels.size);
    this.frameBoundary = new ErrorBoundary('ws_message', metrics, log, sessions.transportGuard);
  }

  /** Starts the shared heartbeat. */
  start(): void {
    if (this.settings.heartbeatIntervalMs > 0 && !this.heartbeatTimer) {
      this.heartbeatTimer = setInterval(this.onHeartbeat, this.settings.heartbeatIntervalMs);
      this.heartbeatTimer.unref();
    }
  }

  get connections(): number {
    return this.channels.size;
  }

  // ---------------------------------------------------------------- a connection admitted

  /** Takes a connection whose handshake completed; throws only on a bug (the caller's boundary closes 1011). */
  open(ws: GatewaySocket, admission: Admitted): void {
    const channel = new WsChannel(ws, admission.socket, this, this.settings.highWaterMark);
    this.channels.add(channel);
    if (admission.refusal || !admission.session) {
      this.metrics.error(
        admission.refusal?.code === WsClose.TransportSwitchRefused
          ? 'transport_switch_refused'
          : 'session_not_found',
      );
      const refusal = admission.refusal ?? { code: WsClose.Internal, reason: 'no session' };
      channel.close(refusal.code, refusal.reason);
      return;
    }
    const session = admission.session;
    channel.session = session;
    if (admission.expiresAt !== undefined) this.expiring.set(channel, admission.expiresAt);
    if (admission.identity !== undefined) this.policy?.watch(channel, admission.identity);
    if (this.messagePolicy && session.clientId === ANONYMOUS_CLIENT) {
      // An anonymous client is rate-limited by its address, found once per connection.
      channel.address = this.messagePolicy.addressOf(
        (admission.socket as Socket).remoteAddress,
        admission.headers,
      );
    }
    if (!admission.resume) {
      channel.hello(session.id, 0, false);
      session.attachPrimary(channel, undefined);
      // Flood protection: a connection that never says initialize is closed (1008) after the deadline.
      this.sessions.sessionLimits?.watchInitialize(session, channel);
      return;
    }
    channel.hello(session.id, admission.afterSeq, true);
    try {
      session.attachPrimary(channel, admission.afterSeq);
    } catch (err) {
      if (!(err instanceof ResumeUnavailableError)) throw err;
      this.metrics.error('resume_unavailable');
      channel.session = undefined;
      channel.close(WsClose.ResumeUnavailable, err.message);
    }
  }

  // ---------------------------------------------------------------- data path (per frame)

  frameIn(channel: WsChannel, data: Buffer, isBinary: boolean): void {
    const session = channel.session;
    if (session === undefined || channel.closed || session.closed) return;
    channel.alive = true;
    try {
      if (isBinary && !isUtf8(data)) {
        this.reject(
          session,
          ErrorCode.ParseError,
          'Parse error: binary frame is not UTF-8 text',
          'parse_error',
        );
        return;
      }
      const text = data.toString('utf8');
      const parsed = parseJsonRpc(text, this.settings.maxJsonDepth);
      if (!parsed.ok) {
        this.metrics.error(refusalKind(parsed.error.error.code));
        session.answer(parsed.error, STANDALONE_STREAM);
        return;
      }
      if (!parsed.batch) {
        this.receive(channel, session, parsed.messages[0], text);
        return;
      }
      const version = session.protocolVersion;
      if (version === undefined || !allowsBatches(version)) {
        this.reject(
          session,
          ErrorCode.InvalidRequest,
          `Invalid Request: JSON-RPC batches are not allowed ${
            version === undefined ? 'before initialize' : `in protocol version ${version}`
          } (only 2025-03-26 has them)`,
          'batch_refused',
        );
        return;
      }
      for (const message of parsed.messages) this.receive(channel, session, message, undefined);
    } catch (err) {
      // Client input must never take the process down; the session may still be resumed.
      this.frameBoundary.ws(channel, err, session.id);
    }
  }

  private receive(
    channel: WsChannel,
    session: Session,
    message: JsonRpcMessage,
    raw: string | undefined,
  ): void {
    if ((message as { method?: string }).method === GatewayMethod.Ack) {
      const seq = (message as { params?: { seq?: unknown } }).params?.seq;
      if (typeof seq === 'number') session.ack(seq); // Session.ack checks the position
      return;
    }
    const refusal = this.messagePolicy?.check(session.clientId, message, 'ws', channel.address);
    if (refusal === undefined) session.receive(message, raw, STANDALONE_STREAM);
    else session.answer(refusalResponse(refusal, (message as { id: JsonRpcId }).id), STANDALONE_STREAM);
  }

  /** A JSON-RPC error (id null) through the session, so it carries a sequence number like every frame. */
  private reject(session: Session, code: number, message: string, kind: string): void {
    this.metrics.error(kind);
    session.answer(errorResponse(null, code, message), STANDALONE_STREAM);
  }

  channelGone(channel: WsChannel, code: number, byPeer: boolean): void {
    this.channels.delete(channel);
    if (this.expiring.size > 0) this.expiring.delete(channel);
    this.policy?.unwatch(channel);
    const session = channel.session;
    channel.session = undefined;
    if (
      byPeer &&
      code === WsCloseFromClient.EndSession &&
      session &&
      !session.closed &&
      !session.hasLiveChannel()
    ) {
      this.sessions.end(session, 'client closed the WebSocket with 1000');
    }
    if (this.channels.size === 0 && this.whenEmpty) this.whenEmpty();
  }

  connectionError(_channel: WsChannel, err: Error): void {
    const code = (err as { code?: string }).code;
    this.metrics.error(
      code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
        ? 'ws_frame_too_large'
        : code === 'WS_ERR_INVALID_UTF8'
          ? 'ws_invalid_utf8'
          : 'ws_protocol_error',
    );
  }

  // ---------------------------------------------------------------- liveness and shutdown

  /** One tick of the shared heartbeat: drop peers that missed the last ping, ping the rest. */
  heartbeat(): void {
    for (const channel of this.channels) {
      if (!channel.heartbeat()) this.metrics.error('ws_heartbeat_timeout');
    }
    if (this.expiring.size > 0) this.closeExpired(Date.now());
  }

  /**
   * A WebSocket is authenticated once, at the upgrade: when its token expires the connection is
   * closed (4401) and the session stays resumable for a reconnect with a fresh token.
   */
  closeExpired(now: number): void {
    for (const [channel, expiresAt] of this.expiring) {
      if (expiresAt > now) continue;
      this.expiring.delete(channel);
      this.metrics.error('ws_credential_expired');
      channel.close(WsClose.CredentialExpired, 'the access token expired: reconnect with a fresh one');
    }
  }

  /**
   * Stops the heartbeat and closes every connection with 1001 (going away);
   * connections that do not finish the close handshake within `graceMs` are dropped.
   */
  async shutdown(graceMs: number): Promise<void> {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    if (this.channels.size > 0) {
      const empty = new Promise<void>((resolve) => (this.whenEmpty = resolve));
      for (const channel of this.channels) {
        // Detach first: the session is not ended by the gateway going away.
        channel.close(WsClose.GoingAway, 'gateway shutting down');
      }
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
      await Promise.race([empty, grace]);
      clearTimeout(timer);
      for (const channel of this.channels) channel.terminate();
      this.whenEmpty = undefined;
    }
  }
}
