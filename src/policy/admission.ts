import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { AuthModeName, ClientConfig, GatewayConfig } from '../config/gateway-config';
import { ConfigError } from '../config/load-config';
import { ANONYMOUS_CLIENT, clientIdFrom } from '../core/client-id';
import { EndReason } from '../core/end-reason';
import type { ClientTransport } from '../core/transport-kind';
import {
  ApiKeys,
  bearerFrom,
  certificateClientId,
  isRefusal,
  JwtVerifier,
  looksLikeJwt,
  refusal,
  type Identity,
  type AuthRefusal,
} from './identity';
import { ClientNames } from './client-names';
import { clientCredentialProblems } from '../config/client-policy-schema';
import { CLIENT_NAME_PATTERN } from '../core/client-id';
import { TrustedProxies } from '../core/trusted-proxies';

export type MaybePromise<T> = T | Promise<T>;

/** One connection's (or request's) admission question, as each transport asks it. */
export interface AdmissionRequest {
  transport: ClientTransport;
  headers: IncomingHttpHeaders;
  /** The client connection (its peer address; a TLSSocket carries the client certificate). */
  socket: Socket | undefined;
  /** Parsed query string, where the transport has one (a claimed `client_id` with AUTH_MODE=none). */
  query?: Record<string, unknown>;
  /** A token the transport found elsewhere than the Authorization header (WebSocket subprotocol, opt-in query). */
  bearer?: string;
  service?: string;
  /** The endpoint path the client used (`/mcp`, `/mcp/<service>`, `/sse`, `/ws/<service>`): names its OAuth resource. */
  path?: string;
}

/** What {@link Admission.admitConnection} is asked beyond the request. */
export interface AdmitOptions {
  /** A new session: the per-session checks (live client policy, teams' checks, S5 check_compliance) run too. */
  newSession?: boolean;
  /**
   * Who the request was already proven to be (a transport that authenticates every request before
   * it knows whether it opens a session): authentication is not repeated.
   */
  identity?: Identity;
}

/** The identity a request claims where no credential is asked for (AUTH_MODE=none). */
export function claimedIdentity(req: Pick<AdmissionRequest, 'headers' | 'query'>): Identity {
  return { clientId: clientIdFrom(req.headers, req.query), via: 'none', scopes: [] };
}

/**
 * Runs `then` with an admission verdict: at once when it is known (no Promise on the hot path),
 * otherwise when it settles, with `late` set (the client may have left meanwhile); a failure goes
 * to `failed` (the transport's error boundary).
 */
export function whenAdmitted<T>(
  verdict: MaybePromise<T>,
  then: (verdict: T, late: boolean) => void,
  failed: (err: unknown) => void,
): void {
  if (!(verdict instanceof Promise)) {
    then(verdict, false);
    return;
  }
  verdict.then((v) => then(v, true)).catch(failed);
}

/** What an extra admission check (ADMISSION_CHECKS) is shown. */
export interface AdmissionContext {
  identity: Identity;
  transport: ClientTransport;
  /** The client address (X-Forwarded-For only from a trusted proxy). */
  address: string;
  headers: IncomingHttpHeaders;
  service: string | undefined;
}

/** A team's own admission check: runs once per new session, on every transport. Return a refusal (identity.ts `refusal()`) to refuse. */
export interface AdmissionCheck {
  readonly name: string;
  check(context: AdmissionContext): MaybePromise<AuthRefusal | undefined | void>;
}

/** A live connection or stream opened with an identity (a WebSocket, an SSE stream): closed when its credential is revoked. */
export interface RevocableChannel {
  close(code: number, reason: string): void;
}

/** Why a live session's credential stopped holding: the close code (4401 key revoked, 4403 client refused) and reason. */
export interface Revocation {
  code: typeof EndReason.CredentialExpired | typeof EndReason.ClientRefused;
  reason: string;
}

/** The S5 questions admission asks (see src/vsm/vsm-bus.service.ts). */
export interface PolicyAsker {
  checkCompliance(
    action: string,
    context: Record<string, unknown>,
  ): Promise<{ allowed: boolean; reason?: string }>;
}

/** Where audit lines go: a pino-backed Nest Logger('Audit') in the app, anything with `log`/`warn` in tests. */
export interface AuditSink {
  log(message: object, context?: string): void;
  warn(message: object, context?: string): void;
}

export interface AuthCounters {
  authRefused(reason: string): void;
  authAdmitted(via: string): void;
}

/**
 * The one admission step every transport runs (plain TypeScript, no Nest): who the client is
 * (API key, JWT, OAuth resource-server token, client certificate), whether that identity may open
 * a session now (live policy, teams' checks, S5 `check_compliance`), and what a refusal carries
 * (401/403 with WWW-Authenticate per RFC 6750 / RFC 9728, JSON-RPC −31008, an audit line). The
 * transports ask {@link admitConnection} and say the refusal themselves; policy writes no reply.
 *
 * - every request (Streamable HTTP POST/GET/DELETE, /messages): a verified credential is cached,
 *   so it costs a map lookup, and an expired token is refused even on a live session;
 * - once per new session (initialize, GET /sse, WebSocket upgrade): `newSession` adds
 *   {@link admitSession}.
 */
export class Admission {
  /** False with AUTH_MODE=none: transports keep the client id the client claims. */
  readonly enabled: boolean;
  private readonly modes: ReadonlySet<string>;
  private apiKeys: ApiKeys;
  /** Which client a token subject, certificate name or claimed id is (modes kept apart). */
  private names: ClientNames;
  private readonly jwt: JwtVerifier | undefined;
  private readonly proxies: TrustedProxies;
  private readonly checks: AdmissionCheck[] = [];
  /** From gateway.yaml `disabled: true` and S5 policy_update `disabledClients`. */
  private disabled = new Set<string>();
  private configDisabled = new Set<string>();
  /** The last S5 `disabledClients`, kept apart so an edit of gateway.yaml does not undo it. */
  private policyDisabled: readonly string[] = [];
  /** S5 policy_update `allowedClients`: when set, only these clients are admitted. */
  private allowed: Set<string> | undefined = undefined;
  private readonly oauth: boolean;
  /** Open WebSockets and SSE streams, with the identity they were opened with (see {@link watch}). */
  private readonly watched = new Map<RevocableChannel, Identity>();

  constructor(
    private readonly config: Pick<
      GatewayConfig,
      'auth' | 'clients' | 'trustedProxies' | 'host' | 'tls' | 's5'
    > &
      Partial<Pick<GatewayConfig, 'allowedHosts'>>,
    private readonly counters: AuthCounters,
    private readonly audit: AuditSink,
    private readonly policy: PolicyAsker | undefined,
    jwksCooldownMs = 30_000,
  ) {
    const modes = config.auth.modes ?? ['none'];
    this.modes = new Set(modes);
    this.enabled = modes.some((m) => m !== 'none');
    this.oauth = this.modes.has('oauth');
    this.apiKeys = new ApiKeys(config.clients);
    this.names = new ClientNames(modes, config.clients);
    this.proxies = new TrustedProxies(config.trustedProxies);
    if (this.modes.has('jwt') || this.oauth) {
      const via = this.oauth ? 'oauth' : 'jwt';
      this.jwt = new JwtVerifier(config.auth, via, jwksCooldownMs, (subject) =>
        this.names.clientOf(via, subject),
      );
    }
    for (const [id, client] of Object.entries(config.clients))
      if (client.disabled) this.configDisabled.add(id);
    this.disabled = new Set(this.configDisabled);
  }

  /** Loads the JWT machinery (jose is an ES module). Startup problems throw (the gateway does not start). */
  async init(): Promise<void> {
    const problems = authConfigProblems(this.config);
    // The same error (and the same one-problem-per-line message) as every other configuration mistake.
    if (problems.length > 0) throw new ConfigError(problems);
    await this.jwt?.init();
  }

  /** Adds a team's check (see ADMISSION_CHECKS in policy.module.ts). */
  use(check: AdmissionCheck): void {
    this.checks.push(check);
  }

  /** S5 policy_update: replaces the live client lists (undefined leaves a list as it is). */
  applyConstraints(update: { disabledClients?: string[]; allowedClients?: string[] | null }): void {
    if (update.disabledClients) {
      this.policyDisabled = update.disabledClients;
      this.disabled = new Set([...this.configDisabled, ...this.policyDisabled]);
    }
    if (update.allowedClients !== undefined) {
      this.allowed = update.allowedClients === null ? undefined : new Set(update.allowedClients);
    }
    this.endRevoked();
  }

  /**
   * An applied edit of gateway.yaml's `clients:` (ConfigReloadService): its API keys and
   * `disabled` flags hold from the next request, so a key removed from the file stops working.
   */
  setClients(clients: Record<string, ClientConfig>): void {
    this.apiKeys = new ApiKeys(clients);
    this.names = new ClientNames([...this.modes] as AuthModeName[], clients);
    // Verified tokens are cached with their client: a changed tokenSubjects list applies from the next request.
    this.jwt?.forget();
    this.configDisabled = new Set(
      Object.entries(clients)
        .filter(([, client]) => client.disabled)
        .map(([id]) => id),
    );
    this.disabled = new Set([...this.configDisabled, ...this.policyDisabled]);
    this.endRevoked();
  }

  // ------------------------------------------------------------------ live sessions

  /**
   * A WebSocket or SSE stream checks its credential once, when it opens: watched, it is closed
   * (as on token expiry) when a later edit removes its API key or disables its client. Requests
   * need no watch: each one is authenticated again.
   */
  watch(channel: RevocableChannel, identity: Identity): void {
    this.watched.set(channel, identity);
  }

  unwatch(channel: RevocableChannel): void {
    if (this.watched.size > 0) this.watched.delete(channel);
  }

  /** Why `identity` no longer holds (its API key was removed, its client disabled or not allowed), or undefined. */
  revocation(identity: Identity): Revocation | undefined {
    const id = identity.clientId;
    if (identity.keyDigest !== undefined && !this.apiKeys.holds(identity.keyDigest, id)) {
      return {
        code: EndReason.CredentialExpired,
        reason: 'the API key was revoked: reconnect with a valid one',
      };
    }
    if (this.clientOf(identity) !== id) {
      return { code: EndReason.ClientRefused, reason: `The credential no longer names client "${id}"` };
    }
    if (this.disabled.has(id)) return { code: EndReason.ClientRefused, reason: `Client "${id}" is disabled` };
    if (this.allowed !== undefined && !this.allowed.has(id)) {
      return { code: EndReason.ClientRefused, reason: `Client "${id}" is not allowed` };
    }
    return undefined;
  }

  /** After a change of keys or client lists: closes what was opened with a credential that no longer holds. */
  private endRevoked(): void {
    for (const [channel, identity] of this.watched) {
      const revoked = this.revocation(identity);
      if (revoked === undefined) continue;
      this.watched.delete(channel);
      this.counters.authRefused(
        revoked.code === EndReason.CredentialExpired ? 'key_revoked' : 'client_revoked',
      );
      this.audit.warn(
        { event: 'revoked', correlationId: randomUUID(), clientId: identity.clientId, code: revoked.code },
        'Audit',
      );
      channel.close(revoked.code, revoked.reason);
    }
  }

  // ------------------------------------------------------------------ per request

  /**
   * Who the request speaks for. Synchronous when the credential was verified before (or is an API
   * key or a certificate); a Promise only the first time a token is seen.
   */
  authenticate(req: AdmissionRequest): MaybePromise<Identity | AuthRefusal> {
    const verdict = this.identify(req);
    if (verdict instanceof Promise) return verdict.then((v) => this.settle(v, req));
    return this.settle(verdict, req);
  }

  /**
   * True when the request can be refused from its headers alone, before its body is read:
   * authentication is on, no mode takes anonymous requests, and it carries no credential at all.
   */
  lacksCredential(req: AdmissionRequest): boolean {
    if (!this.enabled || this.modes.has('none')) return false;
    const headers = req.headers;
    if (headers.authorization !== undefined || headers['x-api-key'] !== undefined) return false;
    return !(this.modes.has('mtls') && (req.socket as TLSSocket | undefined)?.encrypted);
  }

  /** The (counted, audited) refusal of a request {@link lacksCredential} found. */
  refuseAnonymous(req: AdmissionRequest): AuthRefusal {
    return this.refused(refusal(401, 'missing_credentials', this.credentialHint()), req, undefined);
  }

  /**
   * The one admission question every transport asks: who the client is and, for a new session,
   * whether it may open one now. Returns the identity or the refusal, which carries its whole
   * answer (status, JSON-RPC code, `data`, WWW-Authenticate and correlation id headers); each
   * transport says it its own way (an HTTP response, a WebSocket upgrade's status before the 101).
   *
   * Synchronous for a request whose credential was verified before (the hot path); a Promise the
   * first time a token is seen, and always for a new session (teams' checks, S5). With
   * AUTH_MODE=none the client is who it claims to be (`X-MCP-Client-Id`, `?client_id=`).
   */
  admitConnection(req: AdmissionRequest, how: AdmitOptions = {}): MaybePromise<Identity | AuthRefusal> {
    const verdict = how.identity ?? (this.enabled ? this.authenticate(req) : claimedIdentity(req));
    if (!how.newSession) return verdict;
    return Promise.resolve(verdict).then(async (identity) => {
      if (isRefusal(identity)) return identity;
      return (await this.admitSession(identity, req)) ?? identity;
    });
  }

  /** admitConnection() for a new session. */
  admit(req: AdmissionRequest): Promise<Identity | AuthRefusal> {
    return this.admitConnection(req, { newSession: true }) as Promise<Identity | AuthRefusal>;
  }

  private identify(req: AdmissionRequest): MaybePromise<Identity | AuthRefusal> {
    const modes = this.modes;
    const bearer = req.bearer ?? bearerFrom(req.headers);
    if (modes.has('mtls')) {
      const tls = req.socket as TLSSocket | undefined;
      if (tls?.encrypted) {
        const name = certificateClientId(tls, this.config.auth.mtlsClientId);
        if (name !== undefined && CLIENT_NAME_PATTERN.test(name)) {
          return { clientId: this.names.clientOf('mtls', name), via: 'mtls', name, scopes: [] };
        }
        // A certificate that names no usable client: another credential may still prove one.
        if (name !== undefined && bearer === undefined && req.headers['x-api-key'] === undefined) {
          return refusal(
            403,
            'bad_certificate_name',
            `The client certificate's ${this.config.auth.mtlsClientId === 'cn' ? 'subject CN' : 'first DNS/URI SAN'} is not a valid client id (1–128 of A–Z a–z 0–9 . _ : @ | -)`,
          );
        }
      }
    }
    if (bearer !== undefined) {
      if (this.jwt && (looksLikeJwt(bearer) || !modes.has('api_key'))) {
        const cached = this.jwt.cached(bearer, Date.now());
        if (cached !== undefined) return cached;
        return this.jwt.verify(bearer, this.config.auth.audiences, this.ownAudience(req));
      }
      if (modes.has('api_key')) return this.byKey(bearer);
    }
    const headerKey = req.headers['x-api-key'];
    if (typeof headerKey === 'string' && modes.has('api_key')) return this.byKey(headerKey);
    if (bearer !== undefined || typeof headerKey === 'string') {
      return refusal(401, 'unsupported_credential', 'This credential type is not accepted here', {
        bearerError: 'invalid_request',
      });
    }
    if (modes.has('none')) {
      const name = clientIdFrom(req.headers, req.query);
      return { clientId: this.names.clientOf('none', name), via: 'none', name, scopes: [] };
    }
    return refusal(401, 'missing_credentials', this.credentialHint());
  }

  private byKey(key: string): Identity | AuthRefusal {
    const entry = this.apiKeys.lookup(key);
    if (entry === undefined) {
      return refusal(401, 'invalid_api_key', 'The API key is not valid', { bearerError: 'invalid_token' });
    }
    return { clientId: entry.clientId, via: 'api_key', scopes: [], keyDigest: entry.hex };
  }

  /** The client `identity`'s proven name is under the current `clients:` (it changes with an edit). */
  private clientOf(identity: Identity): string {
    const via = identity.via;
    return via === 'api_key' || identity.name === undefined
      ? identity.clientId
      : this.names.clientOf(via, identity.name);
  }

  /** Client gates that apply to every request: disabled clients, the S5 allow-list. */
  private settle(verdict: Identity | AuthRefusal, req: AdmissionRequest): Identity | AuthRefusal {
    if (isRefusal(verdict)) return this.refused(verdict, req, undefined);
    const id = verdict.clientId;
    if (this.disabled.size > 0 && this.disabled.has(id)) {
      return this.refused(refusal(403, 'client_disabled', `Client "${id}" is disabled`), req, id);
    }
    if (this.allowed !== undefined && !this.allowed.has(id)) {
      return this.refused(refusal(403, 'client_not_allowed', `Client "${id}" is not allowed`), req, id);
    }
    return verdict;
  }

  // ------------------------------------------------------------------ per session

  /** Once per new session: teams' checks, then S5 check_compliance. Undefined when admitted. */
  async admitSession(identity: Identity, req: AdmissionRequest): Promise<AuthRefusal | undefined> {
    const id = identity.clientId;
    if (this.disabled.size > 0 && this.disabled.has(id)) {
      return this.refused(refusal(403, 'client_disabled', `Client "${id}" is disabled`), req, id);
    }
    if (this.allowed !== undefined && !this.allowed.has(id)) {
      return this.refused(refusal(403, 'client_not_allowed', `Client "${id}" is not allowed`), req, id);
    }
    const address = this.address(req);
    if (this.checks.length > 0) {
      const context: AdmissionContext = {
        identity,
        transport: req.transport,
        address,
        headers: req.headers,
        service: req.service,
      };
      for (const check of this.checks) {
        let answer: AuthRefusal | undefined | void;
        try {
          answer = await withTimeout(Promise.resolve(check.check(context)), this.config.s5.timeoutMs);
        } catch (err) {
          answer =
            err === TIMED_OUT
              ? refusal(503, 'check_timeout', `Admission check "${check.name}" did not answer in time`)
              : refusal(503, 'check_failed', `Admission check "${check.name}" failed`);
        }
        if (isRefusal(answer)) return this.refused(answer, req, id, check.name);
      }
    }
    if (this.policy) {
      const verdict = await this.policy.checkCompliance('session.admit', {
        clientId: id,
        via: identity.via,
        transport: req.transport,
        service: req.service,
        address,
      });
      if (!verdict.allowed) {
        return this.refused(
          refusal(403, 'compliance_denied', `Refused by policy: ${verdict.reason ?? 'not compliant'}`),
          req,
          id,
        );
      }
    }
    this.counters.authAdmitted(identity.via);
    this.audit.log(
      {
        event: 'admitted',
        correlationId: randomUUID(),
        clientId: id,
        via: identity.via,
        transport: req.transport,
        address,
        service: req.service,
      },
      'Audit',
    );
    return undefined;
  }

  // ------------------------------------------------------------------ refusals

  /**
   * Counts and audits a refusal (one line, never the credential), giving it a correlation id and
   * the response headers it is answered with.
   */
  private refused(
    r: AuthRefusal,
    req: AdmissionRequest,
    clientId: string | undefined,
    check?: string,
  ): AuthRefusal {
    const correlationId = randomUUID();
    (r as AuthRefusal & { correlationId?: string }).correlationId = correlationId;
    r.headers = this.refusalHeaders(r, req);
    this.counters.authRefused(r.reason);
    this.audit.warn(
      {
        event: 'refused',
        correlationId,
        clientId: clientId ?? ANONYMOUS_CLIENT,
        transport: req.transport,
        address: this.address(req),
        status: r.status,
        reason: r.reason,
        ...(check ? { check } : {}),
      },
      'Audit',
    );
    return r;
  }

  /** The response headers of a refusal: WWW-Authenticate for 401 and insufficient_scope, the correlation id. */
  refusalHeaders(r: AuthRefusal, req: Pick<AdmissionRequest, 'headers' | 'socket'>): Record<string, string> {
    const headers: Record<string, string> = {};
    const correlationId = (r as AuthRefusal & { correlationId?: string }).correlationId;
    if (correlationId) headers['x-correlation-id'] = correlationId;
    if (r.status === 401 || r.bearerError === 'insufficient_scope') {
      const parts: string[] = [];
      if (this.oauth) parts.push(`resource_metadata="${this.metadataUrl(req)}"`);
      else parts.push('realm="mcp-gateway"');
      if (r.bearerError) {
        parts.push(`error="${r.bearerError}"`);
        parts.push(`error_description="${r.message.replace(/["\\]/g, '')}"`);
      }
      const scope =
        r.scope ??
        (this.oauth && this.config.auth.requiredScopes.length > 0
          ? this.config.auth.requiredScopes.join(' ')
          : undefined);
      if (scope) parts.push(`scope="${scope}"`);
      headers['www-authenticate'] = `Bearer ${parts.join(', ')}`;
    }
    return headers;
  }

  // ------------------------------------------------------------------ OAuth resource server (RFC 9728)

  /** Scheme://host the client used (X-Forwarded-* only from trusted proxies), or PUBLIC_URL. */
  publicBase(req: Pick<AdmissionRequest, 'headers' | 'socket'>): string {
    if (this.config.auth.publicUrl) return this.config.auth.publicUrl;
    const encrypted = Boolean((req.socket as TLSSocket | undefined)?.encrypted);
    const origin = this.proxies.publicOrigin(req.socket?.remoteAddress, req.headers, encrypted);
    return `${origin.proto}://${origin.host ?? `${this.config.host}`}`;
  }

  /**
   * The canonical URI of the MCP endpoint the client used (RFC 8707 / RFC 9728): `<base>/mcp` unless
   * `path` names another of the gateway's endpoints (`/mcp/<service>`, `/sse`, `/ws`, …).
   */
  resourceUrl(req: Pick<AdmissionRequest, 'headers' | 'socket' | 'path'>): string {
    return `${this.publicBase(req)}${endpointPath(req.path)}`;
  }

  metadataUrl(req: Pick<AdmissionRequest, 'headers' | 'socket' | 'path'>): string {
    return `${this.publicBase(req)}/.well-known/oauth-protected-resource${endpointPath(req.path)}`;
  }

  /** The protected resource metadata document (RFC 9728 §2) of the endpoint at `req.path`. */
  metadata(req: Pick<AdmissionRequest, 'headers' | 'socket' | 'path'>): Record<string, unknown> {
    const auth = this.config.auth;
    return {
      resource: this.resourceUrl(req),
      authorization_servers: auth.authorizationServers,
      scopes_supported: auth.scopesSupported ?? auth.requiredScopes,
      bearer_methods_supported: ['header'],
      resource_name: 'MCP gateway',
    };
  }

  get oauthEnabled(): boolean {
    return this.oauth;
  }

  /**
   * Without AUTH_JWT_AUDIENCE in oauth mode: a token's `aud` must name this gateway — the resource
   * URL of one of its MCP endpoints (all of them are the same protected resource), never another server.
   */
  private ownAudience(req: AdmissionRequest): ((aud: string) => boolean) | undefined {
    if (this.config.auth.audiences || !this.oauth) return undefined;
    const base = this.publicBase(req);
    return (aud) =>
      aud.length > base.length &&
      aud.startsWith(base) &&
      endpointPath(aud.slice(base.length)) === aud.slice(base.length);
  }

  address(req: Pick<AdmissionRequest, 'headers' | 'socket'>): string {
    return this.proxies.clientAddress(req.socket?.remoteAddress, req.headers);
  }

  private credentialHint(): string {
    const ways: string[] = [];
    if (this.modes.has('api_key')) ways.push('an API key (Authorization: Bearer … or X-API-Key)');
    if (this.jwt) ways.push('a bearer token (Authorization: Bearer …)');
    if (this.modes.has('mtls')) ways.push('a client certificate');
    return `Authentication required: send ${ways.join(' or ')}`;
  }
}

const ENDPOINT_PATH = /^\/(mcp|sse|ws)(\/[A-Za-z0-9._~-]{1,128})?$/;

/** `path` when it is one of the gateway's MCP endpoints, else `/mcp` (the canonical one). */
export function endpointPath(path: string | undefined): string {
  return path !== undefined && ENDPOINT_PATH.test(path) ? path : '/mcp';
}

const TIMED_OUT = Symbol('timed out');

/** Resolves as `promise` does, or rejects with TIMED_OUT after `ms` (the timer is cleared either way). */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(TIMED_OUT), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function isTimeout(err: unknown): boolean {
  return err === TIMED_OUT;
}

/**
 * Configuration the gateway must not start with: no authentication on a non-loopback bind unless
 * AUTH_MODE=none was chosen explicitly, and modes without what they need.
 */
export function authConfigProblems(
  config: Pick<GatewayConfig, 'auth' | 'clients' | 'host' | 'tls'> &
    Partial<Pick<GatewayConfig, 'allowedHosts'>>,
): string[] {
  const problems: string[] = [];
  const modes = config.auth.modes;
  if (modes === undefined && !isLoopbackBind(config.host)) {
    problems.push(
      `HOST=${config.host} is not a loopback address: set AUTH_MODE (api_key, jwt, oauth, mtls), or AUTH_MODE=none to run without authentication on purpose`,
    );
  }
  if (!modes) return problems;
  if ((modes.includes('jwt') || modes.includes('oauth')) && !config.auth.jwtSecret && !config.auth.jwksUrl) {
    problems.push('AUTH_MODE jwt/oauth needs AUTH_JWT_SECRET or AUTH_JWKS_URL');
  }
  if (modes.includes('oauth') && config.auth.authorizationServers.length === 0) {
    problems.push(
      'AUTH_MODE=oauth needs AUTH_AUTHORIZATION_SERVERS (the issuers named in the resource metadata)',
    );
  }
  if (
    modes.includes('oauth') &&
    !config.auth.audiences &&
    !config.auth.publicUrl &&
    (config.allowedHosts ?? []).length === 0 &&
    !isLoopbackBind(config.host)
  ) {
    // The accepted audience is "<public URL>/…", and without these the public URL is the Host the
    // client sends: a token issued for another resource server would pass with that server's Host.
    problems.push(
      `AUTH_MODE=oauth on HOST=${config.host} needs PUBLIC_URL, AUTH_JWT_AUDIENCE or ALLOWED_HOSTS: otherwise the client's Host header decides which token audience is accepted`,
    );
  }
  if (modes.includes('api_key') && !Object.values(config.clients).some((c) => (c.apiKeys ?? []).length > 0)) {
    problems.push('AUTH_MODE=api_key needs clients with apiKeys in gateway.yaml');
  }
  if (modes.includes('mtls') && (!config.tls || config.tls.clientCert === 'none' || !config.tls.caFile)) {
    problems.push('AUTH_MODE=mtls needs TLS with TLS_CA_FILE and TLS_CLIENT_CERT=require (or request)');
  }
  // gateway.yaml is checked when it is read; clients given in code (embedders, tests) are checked here.
  problems.push(...clientCredentialProblems(config.clients));
  return problems;
}

function isLoopbackBind(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || h === '[::1]' || h.startsWith('127.');
}
