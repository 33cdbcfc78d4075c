import { STATUS_CODES, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Server as WsLibServer } from 'ws';
import { Header } from '../../../libs/protocol/src/mcp';
import { ErrorCode, errorResponse } from '../../../libs/protocol/src/jsonrpc';
import { parseEventId } from '../../../libs/protocol/src/event-id';
import type { GatewayMetrics } from '../../telemetry/gateway-metrics.service';
import { Tracing } from '../../telemetry/tracing/tracing';
import type { ServiceDirectory } from '../../session/session';
import type { SessionRegistry } from '../../session/session-registry';
import { AdmissionRefusedError } from '../../session/session-capacity';
import { socketRefusal } from '../../policy/flood/flood-guard';
import {
  claimedIdentity,
  whenAdmitted,
  type Admission as PolicyAdmission,
  type AdmissionRequest,
} from '../../policy/admission';
import {
  isRefusal,
  subprotocolToken,
  WS_TOKEN_PREFIX,
  type Identity,
  type Refusal,
} from '../../policy/identity';
import type { RequestGuard } from '../http/request-guard';
import { ErrorBoundary } from '../error-boundary';
import type { GatewaySocket } from './ws-channel';
import { WsClose } from './ws-close-codes';
import type { Admitted, WsLogger, WsServer } from './ws-server';

/** The subprotocol the official SDK client asks for (`new WebSocket(url, 'mcp')`). */
export const MCP_SUBPROTOCOL = 'mcp';

/** Paths that accept the WebSocket upgrade; each also takes `/<service>`. */
const WS_PATHS = ['/ws', '/mcp'];
const SERVICE_NAME = /^[A-Za-z0-9._~-]{1,128}$/;

/** What admission decided for one upgrade; lives only while the (synchronous) handshake runs. */
interface Admission extends Admitted {
  /** The service the session is (or will be) bound to. */
  service: string;
}

type Query = Record<string, string>;

/**
 * Upgrade admission for the WebSocket transport: everything that happens once per connection,
 * before the 101. It listens on the HTTP server's 'upgrade' event, routes `/ws[/<service>]` and
 * `/mcp[/<service>]`, and refuses with an HTTP status and a JSON-RPC body (flood caps, Origin/Host,
 * the subprotocol, the service, the resume request, authentication, session admission, S2's
 * verdict on a transport switch). Only then does it let the `ws` server (owned by the Nest
 * platform adapter, in noServer mode) complete the handshake, and it hands the connection to
 * the frame path (ws-server.ts).
 *
 * Choices (SEP-1288 is a draft; we follow it where the SDK client still works):
 * - subprotocol `mcp`; a list without it → HTTP 400 on the upgrade; no list is accepted.
 * - the session id in the 101 response (`Mcp-Session-Id`) and in a first-frame
 *   notification; sequence numbers as described in ws-channel.ts.
 * - resume by `Mcp-Session-Id` + `Last-Event-ID` or `?sessionId=&lastEventId=`
 *   (SEP-1288 re-sends `initialize` with the id inside; that cannot carry a position).
 */
export class WsUpgrade {
  private httpServer: HttpServer | undefined = undefined;
  private admission: Admission | undefined = undefined;
  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void =>
    this.handleUpgrade(req, socket, head);
  private readonly onConnection = (ws: GatewaySocket): void => this.connected(ws);
  private readonly onHeaders = (headers: string[]): void => this.handshakeHeaders(headers);
  /** What throws during a handshake (and its S2 continuation) or while a connection attaches. */
  private readonly upgradeBoundary: ErrorBoundary;

  constructor(
    /** The `ws` server, in noServer mode: it only completes handshakes admitted here. */
    private readonly wss: WsLibServer<typeof GatewaySocket>,
    /** Where each admitted connection goes. */
    private readonly frames: WsServer,
    private readonly sessions: SessionRegistry,
    private readonly services: ServiceDirectory,
    private readonly guard: RequestGuard,
    private readonly metrics: GatewayMetrics,
    private readonly log: WsLogger,
    /** Authentication and session admission (src/policy); absent: claimed ids, no checks. */
    private readonly policy?: PolicyAdmission,
    /** Accept `?access_token=` on the upgrade (AUTH_WS_QUERY_TOKEN; off by default). */
    private readonly queryToken = false,
  ) {
    this.wss.on('headers', this.onHeaders);
    this.upgradeBoundary = new ErrorBoundary('ws_upgrade', metrics, log, sessions.transportGuard);
  }

  /** Starts taking upgrades on the server Fastify listens on. */
  attach(server: HttpServer): void {
    this.httpServer = server;
    server.on('upgrade', this.onUpgrade);
  }

  /** Stops taking upgrades (shutdown). */
  detach(): void {
    this.httpServer?.removeListener('upgrade', this.onUpgrade);
    this.httpServer = undefined;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const route = routeOf(q === -1 ? url : url.slice(0, q));
    if (route === undefined) {
      // Someone else may serve upgrades on other paths; answer only when we are alone.
      if (this.httpServer && this.httpServer.listenerCount('upgrade') > 1) return;
      this.refuse(
        socket,
        404,
        'not_found',
        ErrorCode.InvalidRequest,
        'Not Found: no WebSocket endpoint here',
      );
      return;
    }
    // A connection the flood guard refused when it was accepted (connection caps, connect rate).
    const refused = socketRefusal(socket as Socket);
    if (refused !== undefined) {
      this.refuse(
        socket,
        503,
        refused.code,
        ErrorCode.Overloaded,
        refused.message,
        `Retry-After: ${Math.max(1, Math.ceil(refused.retryAfterMs / 1000))}`,
      );
      return;
    }
    try {
      this.admit(req, socket, head, route, q === -1 ? {} : queryOf(url.slice(q + 1)));
    } catch (err) {
      this.upgradeBoundary.upgrade(socket, err);
    }
  }

  private admit(req: IncomingMessage, socket: Duplex, head: Buffer, route: Route, query: Query): void {
    const headers = req.headers;
    if (headers.upgrade?.toLowerCase() !== 'websocket') {
      // Node hands every Upgrade request to 'upgrade' listeners; only WebSocket is served.
      this.refuse(
        socket,
        400,
        'bad_upgrade',
        ErrorCode.InvalidRequest,
        'Bad Request: only WebSocket upgrades are served',
      );
      return;
    }
    const refusal = this.guard.check(headers);
    if (refusal) {
      this.refuse(socket, refusal.status, 'forbidden', ErrorCode.InvalidRequest, refusal.message);
      return;
    }
    const offered = headers['sec-websocket-protocol'];
    if (offered !== undefined && !offersMcp(offered)) {
      this.refuse(
        socket,
        400,
        'bad_subprotocol',
        ErrorCode.InvalidRequest,
        `Bad Request: unsupported WebSocket subprotocol "${offeredForDisplay(offered)}"; this endpoint speaks "${MCP_SUBPROTOCOL}"`,
        `Sec-WebSocket-Protocol: ${MCP_SUBPROTOCOL}`,
      );
      return;
    }
    if (route.service !== undefined && !this.services.hasService(route.service)) {
      this.refuse(
        socket,
        404,
        'unknown_service',
        ErrorCode.InvalidRequest,
        `Unknown service "${route.service}"`,
      );
      return;
    }
    const resume = resumeRequest(headers, query);
    if (resume === 'malformed') {
      this.refuse(
        socket,
        400,
        'bad_resume',
        ErrorCode.InvalidRequest,
        'Bad Request: Last-Event-ID must be a sequence number, with the session in Mcp-Session-Id or sessionId',
      );
      return;
    }
    const policy = this.policy;
    if (policy === undefined) {
      this.admitAs(req, socket, head, route, query, resume, claimedIdentity({ headers, query }));
      return;
    }
    // Credentials at the upgrade: Authorization, a SEP-1288 `mcp.bearer.<token>` subprotocol entry
    // (browsers cannot set headers), or ?access_token= when explicitly enabled.
    const request: AdmissionRequest = {
      transport: 'ws',
      headers,
      path: (req.url ?? '/').split('?')[0],
      socket: req.socket,
      query,
      bearer:
        subprotocolToken(offered) ?? (this.queryToken && query.access_token ? query.access_token : undefined),
      service: route.service ?? this.services.defaultService,
    };
    // Node removed its error handler when it handed the socket over: a reset meanwhile must not go unhandled.
    socket.on('error', destroySocket);
    const done = () => socket.off('error', destroySocket);
    // A new session also runs the live client policy, teams' checks and S5 check_compliance, before the 101.
    whenAdmitted(
      policy.admitConnection(request, { newSession: !resume }),
      (verdict, late) => {
        done();
        if (late && socket.destroyed) return;
        if (isRefusal(verdict)) this.refuseAdmission(socket, verdict);
        else this.admitAs(req, socket, head, route, query, resume, verdict);
      },
      (err) => {
        done();
        this.upgradeBoundary.upgrade(socket, err);
      },
    );
  }

  /**
   * An authentication or admission refusal (src/core/refusal.ts), as the WebSocket transport says
   * it: the refusal's status before the upgrade, its headers (WWW-Authenticate) and a JSON-RPC body.
   */
  private refuseAdmission(socket: Duplex, r: Refusal): void {
    const lines = Object.entries(r.headers ?? {}).map(([name, value]) => `${name}: ${value}`);
    this.refuseWith(socket, r.status, r.code, r.message, lines, r.data);
  }

  private admitAs(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    route: Route,
    query: Query,
    resume: ReturnType<typeof resumeRequest>,
    identity: Identity,
  ): void {
    if (resume === 'malformed') return; // answered in admit()
    const clientId = identity.clientId;
    const headers = req.headers;
    if (!resume) {
      // Decide before the handshake: a refused upgrade is a plain 503 with Retry-After (capacity,
      // the transport's breaker, flood limits: sessions per client, sessions per address).
      try {
        this.sessions.admit('ws', clientId, req.socket.remoteAddress, headers);
      } catch (err) {
        if (!(err instanceof AdmissionRefusedError)) throw err;
        const retry = `Retry-After: ${Math.max(1, Math.ceil(err.retryAfterMs / 1000))}`;
        this.refuse(socket, 503, err.code, ErrorCode.Overloaded, err.message, retry);
        return;
      }
    }
    const admission: Admission = {
      socket,
      clientId,
      expiresAt: identity.expiresAt,
      identity: this.policy?.enabled ? identity : undefined,
      service: route.service ?? this.services.defaultService,
      headers,
      resume: undefined,
      afterSeq: resume?.afterSeq,
      refusal: undefined,
      session: undefined,
    };
    if (resume) {
      const session = this.sessions.get(resume.sessionId);
      if (
        !session ||
        session.clientId !== admission.clientId ||
        (route.service !== undefined && route.service !== session.service)
      ) {
        admission.refusal = {
          code: WsClose.SessionNotFound,
          reason: 'Session not found: it expired or never existed',
        };
      } else {
        admission.resume = session;
        admission.service = session.service;
        if (session.transport !== 'ws') {
          // A failover from another transport: S2 decides before the upgrade completes. Node removed
          // its error handler when it handed the socket over: a reset meanwhile must not go unhandled.
          socket.on('error', destroySocket);
          const admitted = this.sessions.admitTransportSwitch(session, 'ws').then(
            (verdict) => {
              socket.off('error', destroySocket);
              if (socket.destroyed) return;
              if (session.closed) {
                admission.resume = undefined;
                admission.refusal = {
                  code: WsClose.SessionNotFound,
                  reason: 'Session not found: it ended meanwhile',
                };
              } else if (!verdict.allowed) {
                admission.refusal = {
                  code: WsClose.TransportSwitchRefused,
                  reason: verdict.reason ?? 'Transport switch refused',
                };
              }
              this.upgrade(req, socket, head, admission);
            },
            (err: Error) => {
              this.log.error(`S2 check failed: ${err.message}`);
              this.refuse(socket, 500, 'internal', ErrorCode.InternalError, 'Internal error');
            },
          );
          // The upgrade runs in there: what it throws would otherwise be an unhandled rejection.
          admitted.catch((err: unknown) => this.upgradeBoundary.upgrade(socket, err));
          return;
        }
      }
    }
    this.upgrade(req, socket, head, admission);
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, admission: Admission): void {
    // handleUpgrade → 'headers' → callback runs synchronously (no verifyClient), so one field holds the admission.
    this.admission = admission;
    try {
      this.wss.handleUpgrade(req, socket, head, this.onConnection);
    } finally {
      this.admission = undefined;
    }
  }

  /** 'headers' of the 101: the handshake is going to succeed, so the session is created now, not before. */
  private handshakeHeaders(headers: string[]): void {
    const admission = this.admission;
    if (!admission || admission.refusal) return;
    const session =
      admission.resume ??
      this.sessions.create(admission.clientId, admission.service, 'ws', admission.headers);
    admission.session = session;
    // Frames carry no headers: the upgrade's trace context stands for every message (only while tracing).
    if (Tracing.enabled) session.incoming = admission.headers;
    headers.push(`Mcp-Session-Id: ${session.id}`);
  }

  private connected(ws: GatewaySocket): void {
    const admission = this.admission;
    if (!admission) {
      ws.close(WsClose.Internal, 'admission lost');
      return;
    }
    try {
      this.frames.open(ws, admission);
    } catch (err) {
      // The 101 is out: from here on a failure is a close code, never an HTTP answer.
      this.upgradeBoundary.ws(ws.channel ?? ws, err, admission.session?.id);
    }
  }

  /** Writes an HTTP error (JSON-RPC body) on a socket that asked to upgrade, then closes it. */
  private refuse(
    socket: Duplex,
    status: number,
    kind: string,
    code: number,
    message: string,
    extraHeader?: string,
  ): void {
    this.metrics.error(kind);
    this.refuseWith(socket, status, code, message, extraHeader ? [extraHeader] : []);
  }

  private refuseWith(
    socket: Duplex,
    status: number,
    code: number,
    message: string,
    extraHeaders: string[],
    data?: unknown,
  ): void {
    // Node removed its own error handler when it handed us the socket.
    socket.on('error', destroySocket);
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const body = JSON.stringify(errorResponse(null, code, message, data));
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
        'Connection: close\r\n' +
        'Content-Type: application/json\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        extraHeaders.map((h) => `${h}\r\n`).join('') +
        `\r\n${body}`,
    );
    socket.once('finish', destroySocket);
  }
}

interface Route {
  /** Named in the path (`/ws/<service>`); undefined for the default service. */
  service: string | undefined;
}

function routeOf(path: string): Route | undefined {
  for (const base of WS_PATHS) {
    if (!path.startsWith(base)) continue;
    if (path.length === base.length) return { service: undefined };
    if (path.charCodeAt(base.length) !== 47 /* / */) continue;
    let service: string;
    try {
      service = decodeURIComponent(path.slice(base.length + 1));
    } catch {
      return undefined;
    }
    return SERVICE_NAME.test(service) ? { service } : undefined;
  }
  return undefined;
}

function queryOf(text: string): Query {
  const out: Query = {};
  for (const [k, v] of new URLSearchParams(text)) if (!(k in out)) out[k] = v;
  return out;
}

/** The offered list as a refusal may repeat it: no SEP-1288 token, and not kilobytes of entries. */
function offeredForDisplay(header: string): string {
  const shown = header
    .split(',')
    .map((p) => p.trim())
    .map((p) => (p.startsWith(WS_TOKEN_PREFIX) ? `${WS_TOKEN_PREFIX}…` : p))
    .join(', ');
  return shown.length > 200 ? `${shown.slice(0, 200)}…` : shown;
}

function offersMcp(header: string): boolean {
  for (const p of header.split(',')) if (p.trim() === MCP_SUBPROTOCOL) return true;
  return false;
}

/** `handleProtocols` of the `ws` server: the only subprotocol spoken. */
export function pickSubprotocol(protocols: Set<string>): string | false {
  return protocols.has(MCP_SUBPROTOCOL) ? MCP_SUBPROTOCOL : false;
}

/**
 * The resume request of an upgrade: session from `Mcp-Session-Id` / `?sessionId=`, position
 * from `Last-Event-ID` / `?lastEventId=`. The position may be a bare seq, a Streamable
 * HTTP event id `<stream>_<seq>` or a legacy SSE id `<session>.<seq>` (failover from
 * another transport), all meaning "everything after seq".
 */
export function resumeRequest(
  headers: IncomingMessage['headers'],
  query: Query,
): { sessionId: string; afterSeq: number | undefined } | undefined | 'malformed' {
  const headerSession = headers[Header.SessionId];
  let sessionId =
    typeof headerSession === 'string' && headerSession !== '' ? headerSession : query.sessionId || undefined;
  const headerLast = headers[Header.LastEventId];
  const last =
    typeof headerLast === 'string' && headerLast !== '' ? headerLast : query.lastEventId || undefined;
  if (last === undefined) return sessionId === undefined ? undefined : { sessionId, afterSeq: undefined };
  let seqText = last;
  const dot = last.lastIndexOf('.');
  if (dot !== -1) {
    sessionId ??= last.slice(0, dot);
    seqText = last.slice(dot + 1);
  }
  const id = parseEventId(seqText);
  if (id === undefined || sessionId === undefined || sessionId === '') return 'malformed';
  return { sessionId, afterSeq: id.seq };
}

function destroySocket(this: Duplex): void {
  this.destroy();
}
