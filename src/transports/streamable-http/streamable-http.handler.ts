import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import {
  allowsBatches,
  DEFAULT_HTTP_PROTOCOL,
  Header,
  isSupportedProtocol,
  Method,
  PROTOCOL_VERSIONS,
  SESSIONLESS_PROTOCOL,
  supportsPriming,
} from '../../../libs/protocol/src/mcp';
import {
  ErrorCode,
  isRequest,
  parseJsonRpc,
  refusalKind,
  type JsonRpcId,
  type JsonRpcMessage,
} from '../../../libs/protocol/src/jsonrpc';
import { formatEventId, parseEventId } from '../../../libs/protocol/src/event-id';
import {
  OVERLOAD_RETRY_AFTER_MS,
  ResumeUnavailableError,
  STANDALONE_STREAM,
  type Session,
} from '../../session/session';
import { whenAdmitted, type AdmissionRequest } from '../../policy/admission';
import { isRefusal, type Identity } from '../../policy/identity';
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
import { RequestGuard } from '../http/request-guard';
import { closeWhenInvalid, SseChannel, type SseChannelOptions } from '../http/sse-channel';
import { PostChannel, PRIMING_DELAY_MS, PrimingScheduler, ResponseMode } from './post-channel';
import { SessionlessHandler, type SessionlessOwner } from './sessionless.handler';
import { headerValue, refuse, type StreamableHttpDeps } from './streamable-http-deps';

/** The parsed query of a request (only `client_id` is read here). */
export type ClientQuery = Record<string, unknown>;

/** Methods served on the MCP endpoint (the Allow header of a 405). */
export const ALLOWED_METHODS = 'GET, POST, DELETE';

/** Versions a request may name in MCP-Protocol-Version at this endpoint, newest first. */
function servedVersions(sessionless: boolean): string[] {
  const out: string[] = [];
  for (let i = PROTOCOL_VERSIONS.length - 1; i >= 0; i--) {
    const v = PROTOCOL_VERSIONS[i];
    if (v !== SESSIONLESS_PROTOCOL || sessionless) out.push(v);
  }
  return out;
}

/**
 * The Streamable HTTP protocol (2025-03-26 … 2025-11-25 with sessions, 2026-07-28 per request)
 * on raw Node responses. One instance per gateway; routes call {@link handle} for every request
 * on /mcp and /mcp/:service. Nothing here allocates per message beyond what the session needs.
 * The folder's entry: it hands 2026-07-28 POSTs to the sessionless bridge (sessionless.handler.ts,
 * which maps the rest of the folder) and is reached back only as that bridge's SessionlessOwner.
 */
export class StreamableHttpHandler implements SessionlessOwner {
  private readonly guard: RequestGuard;
  readonly sseOptions: SseChannelOptions;
  readonly sessionless: SessionlessHandler | undefined;
  /** Responses still being written (streams, pending answers): ended on shutdown. */
  readonly live = new Set<ServerResponse>();
  private readonly untrack: (this: ServerResponse) => void;
  /** Versions accepted in MCP-Protocol-Version (also what server/discover lists), newest first. */
  readonly versions: string[];
  /** Holds back the priming events of 2025-11-25 POST streams (see PRIMING_DELAY_MS). */
  readonly priming = new PrimingScheduler(PRIMING_DELAY_MS);
  /** The last POST Accept header found acceptable (see post()). */
  private acceptedPost: string | undefined = undefined;

  constructor(readonly deps: StreamableHttpDeps) {
    this.guard = new RequestGuard(deps.config);
    this.sseOptions = {
      kind: 'streamable',
      retryMs: deps.config.sse.retryMs,
      eventId: formatEventId,
      keepAlive: deps.keepAlive,
    };
    const live = this.live;
    this.untrack = function (this: ServerResponse) {
      live.delete(this);
    };
    this.versions = servedVersions(deps.config.enableSessionless);
    this.sessionless = deps.config.enableSessionless ? new SessionlessHandler(this) : undefined;
  }

  /** Keeps `res` in the live set until it closes, so shutdown can end it. */
  track(res: ServerResponse): void {
    if (this.live.has(res)) return;
    this.live.add(res);
    res.on('close', this.untrack); // 'close' comes once; on() spares the wrapper once() makes per call
  }

  /**
   * Origin/Host check (DNS rebinding) and service lookup, shared by the body-limit error path.
   * Returns the service name, or undefined when a refusal was sent.
   */
  admit(headers: IncomingHttpHeaders, service: string | undefined, res: ServerResponse): string | undefined {
    const refusal = this.guard.check(headers);
    if (refusal) {
      this.deps.metrics.error(refusal.reason);
      sendRefusal(res, refusal);
      return undefined;
    }
    const name = service ?? this.deps.config.defaultService;
    if (!this.deps.hasService(name)) {
      refuse(this.deps, res, 404, ErrorCode.InvalidRequest, 'unknown_service', `Unknown service "${name}"`);
      return undefined;
    }
    return name;
  }

  /**
   * One request on /mcp[/<service>]. `query` is the parsed query string, when there is one: a
   * client that cannot set headers names itself with `?client_id=` as on the other transports.
   */
  handle(
    method: string,
    service: string | undefined,
    headers: IncomingHttpHeaders,
    body: Buffer | undefined,
    res: ServerResponse,
    query?: ClientQuery,
  ): void {
    try {
      const name = this.admit(headers, service, res);
      if (name === undefined) return;
      const admission = this.deps.admission;
      if (admission === undefined || !admission.enabled) {
        this.dispatch(method, name, headers, body, res, clientIdFrom(headers, query), undefined);
        return;
      }
      const req: AdmissionRequest = {
        transport: 'streamable',
        headers,
        socket: res.socket ?? undefined,
        service: name,
        path: service === undefined ? '/mcp' : `/mcp/${service}`,
      };
      whenAdmitted(
        admission.admitConnection(req),
        (verdict, late) => {
          if (late && (res.destroyed || res.writableEnded)) return; // the client gave up meanwhile
          if (isRefusal(verdict)) sendRefusal(res, verdict);
          else this.dispatch(method, name, headers, body, res, verdict.clientId, verdict);
        },
        (err) => this.internalError(res, err),
      );
    } catch (err) {
      this.internalError(res, err);
    }
  }

  /** `identity`: set when authentication is on (the session belongs to it); `clientId` is its id or the claimed one. */
  private dispatch(
    method: string,
    name: string,
    headers: IncomingHttpHeaders,
    body: Buffer | undefined,
    res: ServerResponse,
    clientId: string,
    identity: Identity | undefined,
  ): void {
    switch (method) {
      case 'POST':
        this.post(name, headers, body, res, clientId, identity);
        return;
      case 'GET':
        this.get(name, headers, res, clientId, identity);
        return;
      case 'DELETE':
        this.delete(name, headers, res, clientId);
        return;
      default:
        refuse(
          this.deps,
          res,
          405,
          ErrorCode.InvalidRequest,
          'method_not_allowed',
          `Method ${method} not allowed`,
          {
            headers: { allow: ALLOWED_METHODS },
          },
        );
    }
  }

  /**
   * The per-message policy, asked before anything reaches a session: true after answering a
   * refused message — 429 with Retry-After and RateLimit headers over its rate limit, or (HTTP 200)
   * the JSON-RPC error of an authorization refusal. A refusal in a batch refuses the whole POST.
   */
  refusedByPolicy(
    clientId: string,
    messages: readonly JsonRpcMessage[],
    batch: boolean,
    headers: IncomingHttpHeaders,
    res: ServerResponse,
  ): boolean {
    const policy = this.deps.policy;
    if (policy === undefined) return false;
    const address =
      clientId === ANONYMOUS_CLIENT ? policy.addressOf(res.socket?.remoteAddress, headers) : undefined;
    for (const m of messages) {
      const refusal = policy.check(clientId, m, 'streamable', address);
      if (refusal === undefined) continue;
      sendRefusal(res, refusal, batch ? null : ((m as { id?: JsonRpcId }).id ?? null));
      return true;
    }
    return false;
  }

  internalError(res: ServerResponse, err: unknown, sessionId?: string): void {
    this.deps.boundary.http(res, err, sessionId);
  }

  /**
   * Validates MCP-Protocol-Version. Returns the header value (undefined when absent),
   * or null when a refusal was sent.
   */
  private protocolVersion(
    headers: IncomingHttpHeaders,
    res: ServerResponse,
    body?: Buffer,
  ): string | undefined | null {
    const version = headerValue(headers[Header.ProtocolVersion]);
    if (version === undefined) return undefined;
    if (isSupportedProtocol(version) && (version !== SESSIONLESS_PROTOCOL || this.sessionless))
      return version;
    refuse(
      this.deps,
      res,
      400,
      ErrorCode.UnsupportedProtocolVersion,
      'unsupported_protocol_version',
      `Unsupported protocol version "${version}"`,
      { id: body ? requestIdOf(body) : null, data: { supported: this.versions, requested: version } },
    );
    return null;
  }

  /** The session named by Mcp-Session-Id, or undefined after answering 400/404. */
  private sessionFor(
    headers: IncomingHttpHeaders,
    service: string,
    res: ServerResponse,
    clientId: string,
  ): Session | undefined {
    const id = headerValue(headers[Header.SessionId]);
    if (id === undefined) {
      refuse(
        this.deps,
        res,
        400,
        ErrorCode.InvalidRequest,
        'session_required',
        'Bad Request: Mcp-Session-Id header is required (send initialize first)',
      );
      return undefined;
    }
    const session = this.deps.sessions.get(id);
    // A session belongs to the service and the client that created it; anything else is "not found".
    if (!session || session.service !== service || session.clientId !== clientId) {
      refuse(this.deps, res, 404, ErrorCode.SessionNotFound, 'session_not_found', 'Session not found');
      return undefined;
    }
    // A header that differs from the negotiated version is tolerated (the spec only says SHOULD, and
    // the conformance suite sends 2025-03-26 on 2025-11-25 sessions); the negotiated version governs.
    return session;
  }

  /**
   * Asks S2 before a session moves here from another transport; continues with `then` when
   * allowed, answers 409 (TransportSwitchRefused, with the reason) when not.
   */
  private afterSwitch(session: Session, res: ServerResponse, then: (session: Session) => void): void {
    const admitted = this.deps.sessions.admitTransportSwitch(session, 'streamable').then(
      (verdict) => {
        if (res.destroyed || res.writableEnded) return; // the client gave up meanwhile
        if (session.closed) {
          refuse(this.deps, res, 404, ErrorCode.SessionNotFound, 'session_not_found', 'Session not found');
          return;
        }
        if (!verdict.allowed) {
          refuse(
            this.deps,
            res,
            409,
            ErrorCode.TransportSwitchRefused,
            'transport_switch_refused',
            verdict.reason ?? 'Transport switch refused',
          );
          return;
        }
        then(session);
      },
      (err: Error) => {
        refuse(this.deps, res, 500, ErrorCode.InternalError, 'internal', `Internal error: ${err.message}`);
      },
    );
    // What `then` throws (it serves the request) would otherwise be an unhandled rejection.
    admitted.catch((err: unknown) => this.internalError(res, err, session.id));
  }

  // ------------------------------------------------------------------ POST

  private post(
    service: string,
    headers: IncomingHttpHeaders,
    body: Buffer | undefined,
    res: ServerResponse,
    clientId: string,
    identity: Identity | undefined,
  ): void {
    const contentType = headers['content-type'];
    if (contentType !== 'application/json' && mediaType(contentType) !== 'application/json') {
      refuse(
        this.deps,
        res,
        415,
        ErrorCode.InvalidRequest,
        'unsupported_media_type',
        'Unsupported Media Type: Content-Type must be application/json',
      );
      return;
    }
    const accept = headers.accept;
    // Clients send the same Accept header on every POST: remember the last one that passed.
    if (
      (accept === undefined || accept !== this.acceptedPost) &&
      (!accepts(accept, 'application/json') || !accepts(accept, 'text/event-stream'))
    ) {
      refuse(
        this.deps,
        res,
        406,
        ErrorCode.InvalidRequest,
        'not_acceptable',
        'Not Acceptable: Accept must allow both application/json and text/event-stream',
      );
      return;
    }
    this.acceptedPost = accept;
    const version = this.protocolVersion(headers, res, body);
    if (version === null) return;
    if (version === SESSIONLESS_PROTOCOL) {
      this.sessionless!.post(service, headers, body, res, clientId, identity);
      return;
    }

    const text = body ? body.toString('utf8') : '';
    const parsed = parseJsonRpc(text, this.deps.config.maxJsonDepth);
    if (!parsed.ok) {
      this.deps.metrics.error(refusalKind(parsed.error.error.code));
      sendJsonRpcError(res, 400, parsed.error.error.code, parsed.error.error.message, {
        id: parsed.error.id,
      });
      return;
    }
    const messages = parsed.messages;
    if (this.refusedByPolicy(clientId, messages, parsed.batch, headers, res)) return;
    let requests = 0;
    let initialize = false;
    for (const m of messages) {
      if (!isRequest(m)) continue;
      requests++;
      if (m.method === Method.Initialize) initialize = true;
    }

    let session: Session | undefined;
    if (initialize) {
      if (parsed.batch) {
        refuse(
          this.deps,
          res,
          400,
          ErrorCode.InvalidRequest,
          'invalid_request',
          'Invalid Request: initialize must not be part of a JSON-RPC batch',
        );
        return;
      }
      if (headers[Header.SessionId] !== undefined) {
        refuse(
          this.deps,
          res,
          400,
          ErrorCode.InvalidRequest,
          'invalid_request',
          'Invalid Request: initialize must be sent without an Mcp-Session-Id header',
          { id: (messages[0] as { id: JsonRpcId }).id },
        );
        return;
      }
      const admission = this.deps.admission;
      if (admission !== undefined) {
        // Once per session: live client policy, teams' checks and S5 check_compliance.
        const req: AdmissionRequest = {
          transport: 'streamable',
          headers,
          socket: res.socket ?? undefined,
          service,
        };
        whenAdmitted(
          admission.admitConnection(req, {
            newSession: true,
            identity: identity ?? { clientId, via: 'none', scopes: [] },
          }),
          (verdict) => {
            if (res.destroyed || res.writableEnded) return;
            if (isRefusal(verdict)) {
              sendRefusal(res, verdict);
              return;
            }
            const created = this.createSession(clientId, service, headers, res);
            if (created)
              this.postToSession(
                created,
                parsed,
                text,
                version,
                requests,
                initialize,
                res,
                headers,
                identity,
              );
          },
          (err) => this.internalError(res, err),
        );
        return;
      }
      session = this.createSession(clientId, service, headers, res);
      if (!session) return;
    } else {
      session = this.sessionFor(headers, service, res, clientId);
      if (!session) return;
      if (session.transport !== 'streamable') {
        // The session arrives from WebSocket or legacy SSE: a failover S2 must allow first.
        this.afterSwitch(session, res, (moved) =>
          this.postToSession(moved, parsed, text, version, requests, initialize, res, headers, identity),
        );
        return;
      }
    }
    this.postToSession(session, parsed, text, version, requests, initialize, res, headers, identity);
  }

  /** A new session for `clientId`, or undefined after answering a capacity refusal (503). */
  private createSession(
    clientId: string,
    service: string,
    headers: IncomingHttpHeaders,
    res: ServerResponse,
  ): Session | undefined {
    try {
      return this.deps.sessions.create(clientId, service, 'streamable', headers, res.socket?.remoteAddress);
    } catch (err) {
      if (refusedForCapacity(res, err, this.deps.metrics)) return undefined;
      throw err;
    }
  }

  private postToSession(
    session: Session,
    parsed: { messages: JsonRpcMessage[]; batch: boolean },
    text: string,
    version: string | undefined,
    requests: number,
    initialize: boolean,
    res: ServerResponse,
    headers: IncomingHttpHeaders,
    /** The credential of the POST: a streamed answer ends when it stops holding. */
    identity: Identity | undefined,
  ): void {
    const messages = parsed.messages;
    const effective = session.protocolVersion ?? version ?? DEFAULT_HTTP_PROTOCOL;
    if (parsed.batch && !allowsBatches(effective)) {
      refuse(
        this.deps,
        res,
        400,
        ErrorCode.InvalidRequest,
        'batch_not_allowed',
        `Invalid Request: JSON-RPC batches are not allowed in protocol version ${effective} (only 2025-03-26)`,
      );
      return;
    }

    if (requests === 0) {
      // Notifications and responses only: hand them over and acknowledge.
      session.incoming = headers;
      for (const m of messages)
        session.receive(m, parsed.batch ? JSON.stringify(m) : text, STANDALONE_STREAM);
      session.incoming = undefined;
      sendStatus(res, 202);
      return;
    }

    if (!session.canAccept(requests)) {
      this.deps.metrics.error('overloaded');
      sendOverloaded(
        res,
        OVERLOAD_RETRY_AFTER_MS,
        parsed.batch ? null : ((messages[0] as { id?: JsonRpcId }).id ?? null),
      );
      return;
    }

    const priming = !initialize && supportsPriming(effective);
    const channel = new PostChannel(
      res,
      this.sseOptions,
      priming ? ResponseMode.Sse : ResponseMode.Lazy,
      parsed.batch,
      initialize ? { [Header.SessionId]: session.id } : undefined,
    );
    if (identity !== undefined) channel.watchCredential(identity, this.deps.admission);
    this.track(res);
    const stream = session.openStream(channel);
    // Every message for this stream comes after the current outbox position.
    if (priming) channel.primeLater(formatEventId(stream, session.lastSeq), this.priming);
    session.incoming = headers;
    if (parsed.batch) {
      for (const m of messages) session.receive(m, JSON.stringify(m), stream);
    } else {
      const message = messages[0] as JsonRpcMessage;
      session.receive(message, text, stream);
      if (priming && isRequest(message)) channel.holdWhileQueued(session, message.id);
    }
    session.incoming = undefined;
    session.sealStream(stream);
  }

  // ------------------------------------------------------------------ GET

  /** `identity`: the credential the stream is opened with (the stream ends when it expires or is revoked). */
  private get(
    service: string,
    headers: IncomingHttpHeaders,
    res: ServerResponse,
    clientId: string,
    identity?: Identity,
  ): void {
    if (!accepts(headers.accept, 'text/event-stream')) {
      refuse(
        this.deps,
        res,
        406,
        ErrorCode.InvalidRequest,
        'not_acceptable',
        'Not Acceptable: Accept must allow text/event-stream',
      );
      return;
    }
    const version = this.protocolVersion(headers, res);
    if (version === null) return;
    if (version === SESSIONLESS_PROTOCOL) {
      this.sessionlessMethodNotAllowed('GET', res);
      return;
    }
    const session = this.sessionFor(headers, service, res, clientId);
    if (!session) return;
    if (session.transport !== 'streamable') {
      this.afterSwitch(session, res, (moved) => this.getForSession(moved, headers, version, res, identity));
      return;
    }
    this.getForSession(session, headers, version, res, identity);
  }

  private getForSession(
    session: Session,
    headers: IncomingHttpHeaders,
    version: string | undefined,
    res: ServerResponse,
    identity: Identity | undefined,
  ): void {
    const effective = session.protocolVersion ?? version ?? DEFAULT_HTTP_PROTOCOL;

    const lastEventId = headerValue(headers[Header.LastEventId]);
    if (lastEventId !== undefined) {
      const position = parseEventId(lastEventId);
      if (!position) {
        refuse(
          this.deps,
          res,
          400,
          ErrorCode.InvalidRequest,
          'bad_last_event_id',
          `Invalid Last-Event-ID "${lastEventId}" (expected <stream>_<seq>)`,
        );
        return;
      }
      const channel = new SseChannel(res, this.sseOptions);
      try {
        // A bare sequence number (from another transport) resumes the standalone stream.
        session.resumeStream(channel, position.stream ?? STANDALONE_STREAM, position.seq);
      } catch (err) {
        if (!(err instanceof ResumeUnavailableError)) throw err;
        // Nothing was written yet: answer 409 so the client knows it must start over (re-send its request).
        channel.closed = true;
        refuse(this.deps, res, 409, ErrorCode.ResumeUnavailable, 'resume_unavailable', err.message, {
          data: { requested: err.requested, oldestAvailable: err.oldestAvailable },
        });
        return;
      }
      if (!channel.closed) {
        this.track(res);
        channel.open();
        if (identity !== undefined) closeWhenInvalid(channel, res, identity, this.deps.admission);
      }
      return;
    }

    const channel = new SseChannel(res, this.sseOptions);
    this.track(res);
    if (identity !== undefined) closeWhenInvalid(channel, res, identity, this.deps.admission);
    session.attachStandalone(channel);
    if (channel.closed || channel.opened) return; // something waiting was replayed (with event ids)
    if (supportsPriming(effective)) channel.prime(formatEventId(STANDALONE_STREAM, session.lastSeq));
    else channel.open();
  }

  // ------------------------------------------------------------------ DELETE

  private delete(service: string, headers: IncomingHttpHeaders, res: ServerResponse, clientId: string): void {
    const version = this.protocolVersion(headers, res);
    if (version === null) return;
    if (version === SESSIONLESS_PROTOCOL) {
      this.sessionlessMethodNotAllowed('DELETE', res);
      return;
    }
    const session = this.sessionFor(headers, service, res, clientId);
    if (!session) return;
    this.deps.sessions.end(session, 'terminated by the client (DELETE)');
    sendStatus(res, 200);
  }

  private sessionlessMethodNotAllowed(method: string, res: ServerResponse): void {
    refuse(
      this.deps,
      res,
      405,
      ErrorCode.InvalidRequest,
      'method_not_allowed',
      `Method ${method} is not part of protocol version ${SESSIONLESS_PROTOCOL}: send each request as a POST`,
      { headers: { allow: 'POST' } },
    );
  }
}

/** The id of the request in `body`, when it is one (only for error replies that precede parsing). */
function requestIdOf(body: Buffer): JsonRpcId | null {
  try {
    const value = JSON.parse(body.toString('utf8')) as { id?: unknown };
    const id = value?.id;
    return typeof id === 'string' || typeof id === 'number' ? id : null;
  } catch {
    return null;
  }
}
