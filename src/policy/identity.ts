import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { AuthModeName, ClientConfig, GatewayConfig } from '../config/gateway-config';
import { ErrorCode } from '../../libs/protocol/src/jsonrpc';
import { CLIENT_NAME_PATTERN } from '../core/client-id';
import { isRefusal, type Refusal } from '../core/refusal';

/** Who a connection speaks for, once admitted. */
export interface Identity {
  /** The client it is: rules, limits, sessions and the audit log go by this (src/policy/client-names.ts). */
  clientId: string;
  via: AuthModeName;
  /**
   * The name the credential proved (token subject, certificate name, claimed id), which clientId may
   * differ from when several modes are on (src/policy/client-names.ts). Unset for an API key: its client is its entry.
   */
  name?: string;
  scopes: readonly string[];
  /** When the credential stops being valid (epoch ms); undefined: it does not expire (API key, mTLS). */
  expiresAt?: number;
  /** The SHA-256 (hex) of the API key it was proven with: sessions opened with it end when the key is removed. */
  keyDigest?: string;
}

/**
 * Why a connection or request was not admitted: the one refusal (src/core/refusal.ts) with the
 * statuses authentication and admission use, JSON-RPC −31008 and `data: { reason }`. `reason` is
 * the metric and audit key (short, snake_case, never a secret); `message` is what the client reads.
 */
export interface AuthRefusal extends Refusal {
  status: 401 | 403 | 404 | 503;
  /** For 403 insufficient_scope: the scopes the request needs. */
  scope?: string;
  /** RFC 6750 error code for WWW-Authenticate (`invalid_token`, `insufficient_scope`); none when no credential came. */
  bearerError?: 'invalid_token' | 'insufficient_scope' | 'invalid_request';
}

export function refusal(
  status: AuthRefusal['status'],
  reason: string,
  message: string,
  extra?: Pick<AuthRefusal, 'scope' | 'bearerError'>,
): AuthRefusal {
  return { refused: true, status, code: ErrorCode.Unauthorized, reason, message, data: { reason }, ...extra };
}

export { isRefusal, type Refusal };

/** What a request carries that may prove an identity; read once per request or upgrade. */
export interface Credentials {
  /** `Authorization: Bearer …`, a WebSocket subprotocol token or (opt-in) `?access_token=`. */
  bearer: string | undefined;
  /** `X-API-Key`. */
  apiKey: string | undefined;
  /** The TLS socket when the client presented a certificate the CA verified. */
  tls: TLSSocket | undefined;
}

const BEARER = /^Bearer[ \t]+([A-Za-z0-9\-._~+/]+=*)[ \t]*$/i;
/** SEP-1288: a browser that cannot set headers offers `mcp.bearer.<base64url token>` beside `mcp`. */
export const WS_TOKEN_PREFIX = 'mcp.bearer.';

export function bearerFrom(headers: IncomingHttpHeaders): string | undefined {
  const value = headers.authorization;
  if (typeof value !== 'string') return undefined;
  const match = BEARER.exec(value);
  return match ? match[1] : undefined;
}

/** The token of a `mcp.bearer.<base64url>` subprotocol entry, decoded; undefined when there is none. */
export function subprotocolToken(offered: string | undefined): string | undefined {
  if (offered === undefined || offered.indexOf(WS_TOKEN_PREFIX) === -1) return undefined;
  for (const entry of offered.split(',')) {
    const value = entry.trim();
    if (!value.startsWith(WS_TOKEN_PREFIX)) continue;
    const encoded = value.slice(WS_TOKEN_PREFIX.length);
    if (!/^[A-Za-z0-9_-]+$/.test(encoded)) return undefined;
    return Buffer.from(encoded, 'base64url').toString('utf8');
  }
  return undefined;
}

/** `sha256:<hex>` of a key, the form gateway.yaml stores (also what `npm run` users compute with sha256sum). */
export function apiKeyDigest(key: string): string {
  return `sha256:${createHash('sha256').update(key).digest('hex')}`;
}

/**
 * API keys per client, kept only as SHA-256 digests. A presented key is hashed and compared
 * with every configured digest by timingSafeEqual, without stopping at the first match, so the
 * time taken says nothing about which key (or how much of one) matched.
 */
interface ApiKeyEntry {
  readonly clientId: string;
  readonly digest: Buffer;
  readonly hex: string;
}

export class ApiKeys {
  private readonly entries: ApiKeyEntry[] = [];
  /** Keys already proven, so a session's later requests skip the hashing (bounded). */
  private readonly proven = new Map<string, ApiKeyEntry>();
  /** Digest (hex) → client, to tell whether a live session's key is still configured. */
  private readonly owners = new Map<string, string>();

  constructor(clients: Record<string, ClientConfig>) {
    for (const [clientId, client] of Object.entries(clients)) {
      for (const key of client.apiKeys ?? []) {
        const hex = key.slice('sha256:'.length).toLowerCase();
        this.entries.push({ clientId, digest: Buffer.from(hex, 'hex'), hex });
        if (!this.owners.has(hex)) this.owners.set(hex, clientId);
      }
    }
  }

  /** True while the key with this digest (hex) is configured for `clientId`. */
  holds(hex: string, clientId: string): boolean {
    return this.owners.get(hex) === clientId;
  }

  get size(): number {
    return this.entries.length;
  }

  /** The client the key belongs to, or undefined. */
  clientOf(key: string): string | undefined {
    return this.lookup(key)?.clientId;
  }

  /** The configured entry the key matches (its client and digest), or undefined. */
  lookup(key: string): ApiKeyEntry | undefined {
    const known = this.proven.get(key);
    if (known !== undefined) return known;
    const digest = createHash('sha256').update(key).digest();
    let found: ApiKeyEntry | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(digest, entry.digest) && found === undefined) found = entry;
    }
    if (found !== undefined) {
      if (this.proven.size >= 4096) this.proven.clear();
      this.proven.set(key, found);
    }
    return found;
  }
}

type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });
type KeyInput = Parameters<Jose['jwtVerify']>[1];

/** A verified token's identity, kept until the token expires. */
interface CachedToken {
  identity: Identity;
  /** Past this (epoch ms, clock tolerance included) the token is refused even from the cache. */
  until: number;
}

export type TokenVerdict = Identity | AuthRefusal;

/**
 * JWT validation with `jose`: an HS256 secret, or RS/ES keys from a JWKS URL (jose caches the
 * set and refetches it when a token names an unknown `kid`, so a rotation needs no restart).
 * Checked: signature, `iss`, `aud`, `exp`, `nbf` (with clock tolerance), required scopes.
 * Verified tokens are cached until they expire, so a session's later requests cost a map lookup
 * and an expired token is refused even on a live session.
 */
export class JwtVerifier {
  private jose: Jose | undefined;
  private key: KeyInput | undefined;
  private readonly cache = new Map<string, CachedToken>();

  /**
   * @param clientOf the client a verified subject is (several modes keep their names apart); a
   * change of it must be followed by {@link forget}, as verified tokens are cached with their client.
   */
  constructor(
    private readonly auth: GatewayConfig['auth'],
    private readonly via: 'jwt' | 'oauth',
    private readonly jwksCooldownMs: number,
    private readonly clientOf: (subject: string) => string = (subject) => subject,
  ) {}

  /** Loads jose (an ES module: imported dynamically from this CommonJS build) and the key. */
  async init(): Promise<void> {
    // Through a variable so tsc keeps the import() instead of turning it into require().
    const specifier = 'jose';
    this.jose = (await import(specifier)) as Jose;
    if (this.auth.jwksUrl) {
      this.key = this.jose.createRemoteJWKSet(new URL(this.auth.jwksUrl), {
        cooldownDuration: this.jwksCooldownMs,
        timeoutDuration: 5000,
      }) as unknown as KeyInput;
    } else if (this.auth.jwtSecret) {
      this.key = new TextEncoder().encode(this.auth.jwtSecret);
    }
  }

  get configured(): boolean {
    return Boolean(this.auth.jwksUrl || this.auth.jwtSecret);
  }

  /** The cached verdict for a token, when it was verified before (sync: the hot path). */
  cached(token: string, now: number): TokenVerdict | undefined {
    const hit = this.cache.get(token);
    if (hit === undefined) return undefined;
    if (hit.until > now) return hit.identity;
    this.cache.delete(token);
    return refusal(401, 'token_expired', 'The access token has expired', { bearerError: 'invalid_token' });
  }

  /**
   * @param audiences accepted `aud` values (checked by jose), or
   * @param audienceCheck a predicate one `aud` value must pass (the gateway's own resource URLs).
   */
  async verify(
    token: string,
    audiences: string[] | undefined,
    audienceCheck?: (aud: string) => boolean,
  ): Promise<TokenVerdict> {
    const jose = this.jose;
    if (!jose || !this.key) {
      return refusal(401, 'jwt_not_configured', 'JWT validation is not configured', {
        bearerError: 'invalid_token',
      });
    }
    try {
      const { payload } = await jose.jwtVerify(token, this.key as never, {
        issuer: this.auth.issuers,
        audience: audiences,
        clockTolerance: this.auth.clockToleranceS,
        algorithms: this.auth.jwksUrl
          ? ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA']
          : ['HS256'],
      });
      if (audienceCheck) {
        const aud = typeof payload.aud === 'string' ? [payload.aud] : (payload.aud ?? []);
        if (!aud.some(audienceCheck)) {
          return refusal(401, 'wrong_audience', 'The access token is not meant for this resource', {
            bearerError: 'invalid_token',
          });
        }
      }
      const claim = payload[this.auth.clientIdClaim];
      if (typeof claim !== 'string' || !CLIENT_NAME_PATTERN.test(claim)) {
        return refusal(401, 'no_client_id', `The token has no usable "${this.auth.clientIdClaim}" claim`, {
          bearerError: 'invalid_token',
        });
      }
      const scopes = scopesOf(payload);
      const missing = this.auth.requiredScopes.filter((s) => !scopes.includes(s));
      if (missing.length > 0) {
        return refusal(403, 'insufficient_scope', `The token lacks the scope(s): ${missing.join(' ')}`, {
          bearerError: 'insufficient_scope',
          scope: this.auth.requiredScopes.join(' '),
        });
      }
      const expiresAt = typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
      const identity: Identity = {
        clientId: this.clientOf(claim),
        via: this.via,
        name: claim,
        scopes,
        expiresAt,
      };
      if (this.cache.size >= 10_000) this.cache.clear();
      this.cache.set(token, {
        identity,
        until:
          expiresAt === undefined ? Number.MAX_SAFE_INTEGER : expiresAt + this.auth.clockToleranceS * 1000,
      });
      return identity;
    } catch (err) {
      return jwtRefusal(err as { code?: string; claim?: string });
    }
  }

  /** Forgets every verified token (a policy change must apply to the next request). */
  forget(): void {
    this.cache.clear();
  }
}

function scopesOf(payload: Record<string, unknown>): string[] {
  if (typeof payload.scope === 'string') return payload.scope.split(' ').filter(Boolean);
  if (Array.isArray(payload.scp)) return payload.scp.filter((s): s is string => typeof s === 'string');
  if (typeof payload.scp === 'string') return payload.scp.split(' ').filter(Boolean);
  return [];
}

/** jose's error codes → what the client and the audit log are told (never the token itself). */
function jwtRefusal(err: { code?: string; claim?: string }): AuthRefusal {
  const invalid = (reason: string, message: string) =>
    refusal(401, reason, message, { bearerError: 'invalid_token' });
  switch (err.code) {
    case 'ERR_JWT_EXPIRED':
      return invalid('token_expired', 'The access token has expired');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (err.claim === 'aud')
        return invalid('wrong_audience', 'The access token is not meant for this resource');
      if (err.claim === 'iss')
        return invalid('wrong_issuer', 'The access token comes from an untrusted issuer');
      if (err.claim === 'nbf') return invalid('token_not_yet_valid', 'The access token is not valid yet');
      return invalid('bad_claims', `The access token's "${err.claim ?? 'claims'}" claim is invalid`);
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return invalid('bad_signature', 'The access token signature is invalid');
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return invalid('unknown_key', 'The access token is signed with an unknown key');
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return invalid('bad_algorithm', 'The access token uses an algorithm that is not accepted');
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JOSE_GENERIC':
      return refusal(503, 'jwks_unavailable', 'The signing keys could not be fetched; retry later');
    default:
      return invalid('malformed_token', 'The access token is malformed');
  }
}

/** A compact JWS has three base64url parts; an API key has none of its dots. */
export function looksLikeJwt(token: string): boolean {
  const first = token.indexOf('.');
  return first > 0 && token.indexOf('.', first + 1) > first + 1 && token.startsWith('eyJ');
}

/** The client id in a verified client certificate: subject CN, or the first DNS / URI SAN. */
export function certificateClientId(socket: TLSSocket, from: 'cn' | 'san'): string | undefined {
  if (!socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  if (from === 'cn') {
    const cn = cert.subject?.CN;
    const value = Array.isArray(cn) ? cn[0] : cn;
    return typeof value === 'string' && value.length > 0 ? value : undefined;
  }
  for (const part of (cert.subjectaltname ?? '').split(',')) {
    const [kind, ...rest] = part.trim().split(':');
    if ((kind === 'DNS' || kind === 'URI') && rest.length > 0) return rest.join(':');
  }
  return undefined;
}
