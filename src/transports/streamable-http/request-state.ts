import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The `requestState` the 2026-07-28 bridge mints in an `input_required` result (MCP 2026-07-28
 * basic/patterns/mrtr: state passes through the client, so it is attacker-controlled input; a
 * server that relies on it protects its integrity and binds it to the principal, a short
 * expiry and the originating request).
 *
 * Format: `v1.<payload>.<mac>`, both base64url; the MAC is HMAC-SHA256 over `v1.<payload>`
 * with the configured key (SESSIONLESS_STATE_KEY, so every node of a cluster can verify it) or
 * a per-process random key. The payload names the parked upstream request (flow id and round),
 * never its content: the state alone is worth nothing without the gateway that parks it.
 */
export interface StatePayload {
  /** The parked request (flow) this state resumes: random, 128 bits. */
  f: string;
  /** Its round: each round's state is accepted once. */
  r: number;
  /** Expiry, epoch milliseconds. */
  e: number;
  /** Digest of the principal (client id and service) it was issued to. */
  p: string;
  /** The method of the request it belongs to. */
  m: string;
  /** Digest of that request's salient parameters (all but `_meta`, `inputResponses`, `requestState`). */
  d: string;
  /** The gateway node that parks the upstream request (cluster mode: where a retry must be served). */
  n: string;
}

/** Why a presented requestState is refused (the error's `data.reason`). */
export type StateRefusal = 'malformed' | 'tampered' | 'expired' | 'foreign' | 'mismatch';

const VERSION = 'v1';

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/** A short, stable digest (base64url SHA-256, 128 bits) of a string. */
export function digestOf(text: string): string {
  return createHash('sha256').update(text).digest().subarray(0, 16).toString('base64url');
}

/** JSON with object keys sorted at every level: equal parameters give equal digests. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/** The parameters a requestState is bound to: everything but the round-trip fields and `_meta`. */
export function paramsDigest(params: unknown): string {
  if (params === null || typeof params !== 'object' || Array.isArray(params)) return digestOf('');
  const { _meta: _m, inputResponses: _i, requestState: _s, ...salient } = params as Record<string, unknown>;
  return digestOf(canonicalJson(salient));
}

/** Mints and verifies requestState values with one HMAC key. */
export class RequestStateCodec {
  private readonly key: Buffer;

  constructor(
    /** The configured key (any string); undefined: a random key for this process only. */
    key: string | undefined,
    /** This node's id, written into every state (which node parks the upstream request). */
    readonly node: string,
  ) {
    this.key = key === undefined ? randomBytes(32) : Buffer.from(key, 'utf8');
  }

  /** A fresh flow id. */
  static flowId(): string {
    return randomBytes(16).toString('base64url');
  }

  mint(payload: StatePayload): string {
    const body = `${VERSION}.${b64url(JSON.stringify(payload))}`;
    return `${body}.${this.mac(body).toString('base64url')}`;
  }

  /**
   * The payload of a state this key minted, checked for expiry, principal, method and
   * parameters; or why it is refused. The MAC is checked first: nothing of a forged state is
   * believed.
   */
  verify(
    state: string,
    expected: { principal: string; method: string; digest: string; now: number },
  ): { ok: true; payload: StatePayload } | { ok: false; reason: StateRefusal } {
    const parts = state.split('.');
    if (parts.length !== 3 || parts[0] !== VERSION) return { ok: false, reason: 'malformed' };
    const body = `${parts[0]}.${parts[1]}`;
    const given = Buffer.from(parts[2], 'base64url');
    const want = this.mac(body);
    if (given.length !== want.length || !timingSafeEqual(given, want))
      return { ok: false, reason: 'tampered' };
    let payload: StatePayload;
    try {
      payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as StatePayload;
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    if (typeof payload !== 'object' || payload === null || typeof payload.f !== 'string') {
      return { ok: false, reason: 'malformed' };
    }
    if (!(payload.e > expected.now)) return { ok: false, reason: 'expired' };
    if (payload.p !== digestOf(expected.principal)) return { ok: false, reason: 'foreign' };
    if (payload.m !== expected.method || payload.d !== expected.digest)
      return { ok: false, reason: 'mismatch' };
    return { ok: true, payload };
  }

  private mac(body: string): Buffer {
    return createHmac('sha256', this.key).update(body).digest();
  }
}
