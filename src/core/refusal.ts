/**
 * Refusals: the one shape every layer says "no" in — authentication and session admission
 * (src/policy/admission.ts), the per-message policy (rate limits, authorization), capacity and
 * flood limits (thrown as {@link AdmissionRefusedError}), the Host/Origin guard. A refusal
 * carries everything its answer needs; each transport maps it once to its own reply (an HTTP
 * status with a JSON-RPC error body, a WebSocket upgrade's status before the 101, an in-band
 * JSON-RPC error on a live connection). Plain TypeScript.
 */
import { ErrorCode } from '../../libs/protocol/src/jsonrpc';

export interface Refusal {
  readonly refused: true;
  /** The HTTP status it is answered with (a WebSocket upgrade gets it before the 101). */
  readonly status: number;
  /** The JSON-RPC error code of the answer. */
  readonly code: number;
  /** The metric and audit key: short, snake_case, never a secret. */
  readonly reason: string;
  /** What the client reads. */
  readonly message: string;
  /** The JSON-RPC error's `data`. */
  data?: Record<string, unknown>;
  /** Response headers (`Retry-After`, `WWW-Authenticate`, `RateLimit`…); none on an in-band answer. */
  headers?: Record<string, string>;
  /** How long the client is told to wait, when waiting helps. */
  readonly retryAfterMs?: number;
}

export function isRefusal<T extends object>(value: T | Refusal | undefined | void): value is Refusal {
  return value !== undefined && (value as Partial<Refusal>).refused === true;
}

/** `Retry-After` in whole seconds, at least 1. */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/**
 * A new session or connection refused for capacity (descriptors, a transport's breaker or cap,
 * flood limits): HTTP 503 with Retry-After and JSON-RPC −31003 carrying `retryAfterMs`.
 */
export function overloaded(reason: string, message: string, retryAfterMs: number): Refusal {
  return {
    refused: true,
    status: 503,
    code: ErrorCode.Overloaded,
    reason,
    message,
    data: { retryAfterMs },
    headers: { 'retry-after': String(retryAfterSeconds(retryAfterMs)) },
    retryAfterMs,
  };
}

/**
 * A new session or connection refused before it started, thrown from where the limit is known
 * (the session registry, the flood guard). `code` is the refusal's metric key; every transport
 * answers it as {@link refusal} says (HTTP 503 with Retry-After and JSON-RPC −31003; a WebSocket
 * upgrade gets the 503 before the 101).
 */
export abstract class AdmissionRefusedError extends Error {
  abstract readonly code: string;

  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
  }

  /** The refusal to answer with. */
  get refusal(): Refusal {
    return overloaded(this.code, this.message, this.retryAfterMs);
  }
}
