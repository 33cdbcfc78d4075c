import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import {
  ErrorCode,
  isRequest,
  parseJsonRpc,
  refusalKind,
  type JsonRpcId,
  type JsonRpcMessage,
} from '../../../libs/protocol/src/jsonrpc';
import type { GatewayConfig } from '../../config/gateway-config';
import type { GatewayMetrics } from '../../telemetry/gateway-metrics.service';
import {
  OVERLOAD_RETRY_AFTER_MS,
  ResumeUnavailableError,
  STANDALONE_STREAM,
  type ServiceDirectory,
  type Session,
} from '../../session/session';
import type { SessionRegistry, SwitchVerdict } from '../../session/session-registry';
import type { ErrorBoundary } from '../error-boundary';
import { whenAdmitted, type Admission, type AdmissionRequest } from '../../policy/admission';
import { isRefusal, type Identity } from '../../policy/identity';
import { refusalResponse, type MessagePolicy } from '../../policy/message-policy';
import { ANONYMOUS_CLIENT, clientIdFrom } from '../../core/client-id';
import { refusedForCapacity } from '../http/capacity-reply';
import {
  accepts,
  mediaType,
  sendJsonRpcError,
  sendOverloaded,
  sendRefusal,
  sendStatus,
} from '../http/http-reply';
import type { KeepAliveTicker } from '../http/keep-alive-ticker';
import type { RequestGuard } from '../http/request-guard';
import { closeWhenInvalid, SseChannel } from '../http/sse-channel';

/** Path clients POST their messages to; the endpoint event names it with the session id. */
export const MESSAGES_PATH = '/messages';

/**
 * Legacy HTTP+SSE transport (protocol 2024-11-05).
 *
 * GET /sse opens the stream and announces the POST endpoint; every event carries
 * `id: <sessionId>.<seq>` so that a plain EventSource reconnect (same URL, Last-Event-ID)
 * finds its session again and receives exactly what it missed.
 */
export class LegacySseHandler {
  /**
   * GET /sse responses opened with a credential that expires (a JWT's `exp`), and when: the
   * stream is ended then (4401), as a WebSocket is; the session stays resumable with a fresh token.
   */
  private readonly opener = new WeakMap<ServerResponse, Identity>();

  constructor(
    private readonly config: GatewayConfig,
    private readonly sessions: SessionRegistry,
    /** Which services exist (the session layer answers; transports never read the router). */
    private readonly services: ServiceDirectory,
    private readonly guard: RequestGuard,
    private readonly keepAlive: KeepAliveTicker,
    private readonly metrics: GatewayMetrics,
    /** Answers what the async continuations below GET /sse throw (the routes' own boundary). */
    private readonly boundary: ErrorBoundary,
    /** Authentication and session admission (src/policy); absent: claimed ids, no checks. */
    private readonly admission?: Admission,
    /** Per-message policy (rate limits, authorization); refusals are answered on the stream. */
    private readonly policy?: MessagePolicy,
  ) {}

  /**
   * Runs `then` with the request's client id once it is authenticated (synchronously when the
   * credential is known); answers the refusal otherwise. With authentication off the id is the claimed one.
   */
  private authenticated(
    req: IncomingMessage,
    res: ServerResponse,
    query: QueryParams,
    then: (clientId: string, identity: Identity | undefined, request: AdmissionRequest | undefined) => void,
  ): void {
    const admission = this.admission;
    if (admission === undefined || !admission.enabled) {
      then(clientIdFrom(req.headers, query), undefined, undefined);
      return;
    }
    const path = (req.url ?? '').split('?')[0];
    const request: AdmissionRequest = {
      transport: 'sse',
      headers: req.headers,
      socket: req.socket,
      // The resource of POST /messages is the stream's endpoint.
      path: path === MESSAGES_PATH ? '/sse' : path,
    };
    whenAdmitted(
      admission.admitConnection(request),
      (verdict, late) => {
        if (late && (res.destroyed || res.writableEnded)) return;
        if (isRefusal(verdict)) sendRefusal(res, verdict);
        else then(verdict.clientId, verdict, request);
      },
      (err) => this.boundary.http(res, err),
    );
  }

  /** GET /sse[/:service] — new session, or resume of an existing one. */
  openStream(
    req: IncomingMessage,
    res: ServerResponse,
    service: string | undefined,
    query: QueryParams,
  ): void {
    if (!this.admit(req, res)) return;
    if (req.headers.accept && !accepts(req.headers.accept, 'text/event-stream')) {
      this.refuse(res, 406, 'not_acceptable', 'Not Acceptable: the client must accept text/event-stream');
      return;
    }
    this.authenticated(req, res, query, (clientId, identity) => {
      if (identity !== undefined) this.opener.set(res, identity);
      const resume = resumePosition(req.headers['last-event-id'], query);
      if (resume) {
        this.resumeStream(req, res, resume, service, query, clientId);
        return;
      }
      const target = service ?? this.services.defaultService;
      if (!this.services.hasService(target)) {
        this.refuse(res, 404, 'unknown_service', `Unknown service "${target}"`);
        return;
      }
      const admission = this.admission;
      if (admission === undefined) {
        this.openSession(req, res, query, clientId, target);
        return;
      }
      // Once per session: live client policy, teams' checks and S5 check_compliance.
      const request: AdmissionRequest = {
        transport: 'sse',
        headers: req.headers,
        socket: req.socket,
        service: target,
      };
      whenAdmitted(
        admission.admitConnection(request, {
          newSession: true,
          identity: identity ?? { clientId, via: 'none', scopes: [] },
        }),
        (verdict) => {
          if (res.destroyed || res.writableEnded) return;
          if (isRefusal(verdict)) sendRefusal(res, verdict);
          else this.openSession(req, res, query, clientId, target);
        },
        (err) => this.boundary.http(res, err),
      );
    });
  }

  private openSession(
    req: IncomingMessage,
    res: ServerResponse,
    query: QueryParams,
    clientId: string,
    target: string,
  ): void {
    let session: Session;
    try {
      session = this.sessions.create(clientId, target, 'sse', req.headers, req.socket.remoteAddress);
    } catch (err) {
      if (refusedForCapacity(res, err, this.metrics)) return;
      throw err;
    }
    const channel = this.channelFor(session, res);
    // With an id (position 0: nothing sent yet) so a reconnect before the first message resumes this session.
    channel.event('endpoint', endpointFor(session, req, query), 0);
    session.attachPrimary(channel, undefined);
    // Flood protection: a stream that never says initialize is closed after the deadline.
    this.sessions.sessionLimits?.watchInitialize(session, channel);
  }

  private resumeStream(
    req: IncomingMessage,
    res: ServerResponse,
    resume: ResumePosition,
    service: string | undefined,
    query: QueryParams,
    clientId: string,
  ): void {
    const session = this.sessions.get(resume.sessionId);
    // A session answers only to the client (and service) that created it: anything else is "not found".
    if (!session || session.clientId !== clientId || (service !== undefined && service !== session.service)) {
      this.refuse(res, 404, 'session_not_found', 'Session not found: it expired or never existed', true);
      return;
    }
    try {
      // Refuse before the stream opens (409): an EventSource would retry a stream that ends in an error.
      session.checkResumable(resume.seq);
    } catch (err) {
      if (!(err instanceof ResumeUnavailableError)) throw err;
      this.metrics.error('resume_unavailable');
      sendJsonRpcError(res, 409, ErrorCode.ResumeUnavailable, err.message, {
        data: { requested: err.requested, oldestAvailable: err.oldestAvailable },
      });
      return;
    }
    if (session.transport !== 'sse') {
      // A failover from another transport: S2 decides first.
      const admitted = this.sessions.admitTransportSwitch(session, 'sse').then(
        (verdict) => {
          if (this.answeredAfterSwitch(session, verdict, res)) return;
          this.attachResumed(session, res, resume.seq, endpointFor(session, req, query));
        },
        (err: Error) => sendJsonRpcError(res, 500, ErrorCode.InternalError, `Internal error: ${err.message}`),
      );
      // attachResumed serves the stream: what it throws would otherwise be an unhandled rejection.
      admitted.catch((err: unknown) => this.boundary.http(res, err, session.id));
      return;
    }
    this.attachResumed(session, res, resume.seq, endpointFor(session, req, query));
  }

  private attachResumed(session: Session, res: ServerResponse, afterSeq: number, endpoint: string): void {
    const channel = this.channelFor(session, res);
    // Announce the endpoint again: clients that reconnected from scratch need it, the rest ignore it.
    channel.event('endpoint', endpoint, afterSeq);
    try {
      session.attachPrimary(channel, afterSeq);
    } catch (err) {
      if (!(err instanceof ResumeUnavailableError)) throw err;
      this.metrics.error('resume_unavailable');
      channel.event(
        'error',
        JSON.stringify({ code: ErrorCode.ResumeUnavailable, message: err.message, sessionId: session.id }),
      );
      channel.end();
    }
  }

  /** POST /messages?sessionId=… — accepts one message (or a batch) for the session; answers 202 at once. */
  postMessage(req: IncomingMessage, res: ServerResponse, body: unknown, query: QueryParams): void {
    if (!this.admit(req, res)) return;
    const sessionId = typeof query.sessionId === 'string' ? query.sessionId : undefined;
    if (!sessionId) {
      this.refuse(res, 400, 'missing_session', 'Bad Request: the sessionId query parameter is required');
      return;
    }
    this.authenticated(req, res, query, (clientId) => this.postFor(req, res, body, sessionId, clientId));
  }

  private postFor(
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    sessionId: string,
    clientId: string,
  ): void {
    const session = this.sessions.get(sessionId);
    if (!session || session.clientId !== clientId) {
      this.refuse(res, 404, 'session_not_found', 'Session not found: it expired or never existed', true);
      return;
    }
    if (mediaType(req.headers['content-type']) !== 'application/json') {
      this.refuse(
        res,
        415,
        'unsupported_media_type',
        'Unsupported Media Type: Content-Type must be application/json',
      );
      return;
    }
    const text = Buffer.isBuffer(body) ? body.toString('utf8') : '';
    const parsed = parseJsonRpc(text, this.config.maxJsonDepth);
    if (!parsed.ok) {
      this.metrics.error(refusalKind(parsed.error.error.code));
      sendJsonRpcError(res, 400, parsed.error.error.code, parsed.error.error.message, {
        id: parsed.error.id,
      });
      return;
    }
    if (session.transport !== 'sse') {
      // Messages for a session on WebSocket or Streamable HTTP move it here: S2 decides first,
      // as it does for every other switch.
      this.sessions.admitTransportSwitch(session, 'sse').then(
        (verdict) => this.postAfterSwitch(session, verdict, parsed, text, res, req.headers),
        (err: Error) => this.switchFailed(res, err),
      );
      return;
    }
    this.accept(session, parsed, text, res, req.headers);
  }

  /** S2 answered for a POST that moves its session to this transport (never throws: it runs in a continuation). */
  /**
   * After S2's verdict on a switch to legacy SSE: answers (and returns true) when the request must
   * not go on — the client gave up, the session ended meanwhile, or the switch was refused.
   */
  private answeredAfterSwitch(session: Session, verdict: SwitchVerdict, res: ServerResponse): boolean {
    if (res.destroyed || res.writableEnded) return true;
    if (session.closed) {
      this.refuse(res, 404, 'session_not_found', 'Session not found: it ended meanwhile', true);
      return true;
    }
    if (!verdict.allowed) {
      this.metrics.error('transport_switch_refused');
      sendJsonRpcError(
        res,
        409,
        ErrorCode.TransportSwitchRefused,
        verdict.reason ?? 'Transport switch refused',
      );
      return true;
    }
    return false;
  }

  private postAfterSwitch(
    session: Session,
    verdict: SwitchVerdict,
    parsed: { messages: JsonRpcMessage[]; batch: boolean },
    text: string,
    res: ServerResponse,
    headers: IncomingHttpHeaders,
  ): void {
    try {
      if (this.answeredAfterSwitch(session, verdict, res)) return;
      this.accept(session, parsed, text, res, headers);
    } catch (err) {
      this.switchFailed(res, err as Error);
    }
  }

  private switchFailed(res: ServerResponse, err: Error): void {
    this.metrics.error('internal_error');
    if (!res.headersSent)
      sendJsonRpcError(res, 500, ErrorCode.InternalError, `Internal error: ${err.message}`);
    else res.end();
  }

  /** In-flight bound, then 202 and the messages handed to the session. */
  private accept(
    session: Session,
    parsed: { messages: JsonRpcMessage[]; batch: boolean },
    text: string,
    res: ServerResponse,
    headers: IncomingHttpHeaders,
  ): void {
    let requests = 0;
    for (const m of parsed.messages) if (isRequest(m)) requests++;
    if (!session.canAccept(requests)) {
      this.metrics.error('overloaded');
      const first = parsed.messages[0] as { id?: JsonRpcId };
      sendOverloaded(res, OVERLOAD_RETRY_AFTER_MS, parsed.batch ? null : (first.id ?? null));
      return;
    }
    sendStatus(res, 202);
    session.incoming = headers;
    const address =
      this.policy && session.clientId === ANONYMOUS_CLIENT && res.req
        ? this.policy.addressOf(res.req.socket.remoteAddress, res.req.headers)
        : undefined;
    deliver(session, parsed.messages, parsed.batch ? undefined : text, this.policy, address);
    session.incoming = undefined;
  }

  /**
   * A method the route does not serve (HEAD included: served as a GET it would open a stream and a
   * session for a client that reads no body): 405 naming the one it does, as /mcp answers.
   */
  methodNotAllowed(req: IncomingMessage, res: ServerResponse, allow: 'GET' | 'POST'): void {
    if (!this.admit(req, res)) return;
    this.metrics.error('method_not_allowed');
    sendJsonRpcError(res, 405, ErrorCode.InvalidRequest, `Method ${req.method} not allowed`, {
      headers: { allow },
    });
  }

  private channelFor(session: Session, res: ServerResponse): SseChannel {
    const sessionId = session.id;
    const channel = new SseChannel(res, {
      kind: 'sse',
      retryMs: this.config.sse.retryMs,
      eventId: (_stream, seq) => `${sessionId}.${seq}`,
      keepAlive: this.keepAlive,
    });
    channel.open();
    const identity = this.opener.get(res);
    if (identity !== undefined) closeWhenInvalid(channel, res, identity, this.admission);
    return channel;
  }

  private admit(req: IncomingMessage, res: ServerResponse): boolean {
    const refusal = this.guard.check(req.headers);
    if (!refusal) return true;
    this.refuse(res, refusal.status, 'forbidden', refusal.message);
    return false;
  }

  private refuse(
    res: ServerResponse,
    status: number,
    kind: string,
    message: string,
    sessionGone = false,
  ): void {
    this.metrics.error(kind);
    sendJsonRpcError(
      res,
      status,
      sessionGone ? ErrorCode.SessionNotFound : ErrorCode.InvalidRequest,
      message,
    );
  }
}

export type QueryParams = Record<string, string | string[] | undefined>;

/**
 * The POST URL announced in the `endpoint` event. A client that named itself in the query
 * (browsers cannot set headers on an EventSource) gets its id back in the URL, so its POSTs
 * speak for the same client.
 */
function endpointFor(session: Session, req: IncomingMessage, query: QueryParams): string {
  const url = `${MESSAGES_PATH}?sessionId=${session.id}`;
  const fromQuery = typeof query.client_id === 'string' && clientIdFrom(req.headers, {}) !== session.clientId;
  return fromQuery ? `${url}&client_id=${encodeURIComponent(session.clientId)}` : url;
}

interface ResumePosition {
  sessionId: string;
  seq: number;
}

/** Last-Event-ID `<session>.<seq>`, or `?sessionId=…` with a numeric Last-Event-ID (header or `lastEventId` query). */
function resumePosition(
  header: string | string[] | undefined,
  query: QueryParams,
): ResumePosition | undefined {
  const raw =
    typeof header === 'string'
      ? header
      : typeof query.lastEventId === 'string'
        ? query.lastEventId
        : undefined;
  if (!raw) return undefined;
  const dot = raw.lastIndexOf('.');
  const seqText = dot === -1 ? raw : raw.slice(dot + 1);
  const sessionId = dot === -1 ? query.sessionId : raw.slice(0, dot);
  if (typeof sessionId !== 'string' || !/^\d{1,15}$/.test(seqText)) return undefined;
  return { sessionId, seq: Number(seqText) };
}

/**
 * Hands the messages to the session; one the policy refuses (rate limit, authorization) is
 * answered in-band on the SSE stream (−31004 with retryAfterMs, or the authorization error) and
 * never forwarded.
 */
function deliver(
  session: Session,
  messages: JsonRpcMessage[],
  raw: string | undefined,
  policy: MessagePolicy | undefined,
  address: string | undefined,
): void {
  for (const message of messages) {
    const refusal = policy?.check(session.clientId, message, 'sse', address);
    if (refusal === undefined) session.receive(message, raw, STANDALONE_STREAM);
    else session.answer(refusalResponse(refusal, (message as { id: JsonRpcId }).id), STANDALONE_STREAM);
  }
}
