import type { TransportKind } from './transport-kind';

/**
 * Why a connection (or the whole transport) failed.
 * - `connection-lost`, `connect-failed`: a network or server hiccup; the client reconnects.
 * - `switch-refused`: the gateway's anti-oscillation guard (S2) refused moving the session
 *   to this transport; the client tries another one, and reports it if nothing else works.
 * - `session-expired`: the gateway no longer knows the session (idle timeout, ended, wrong client).
 * - `session-moved`: another connection took the session over.
 * - `resume-unavailable`: the gateway dropped messages the client has not seen; resuming would lose them.
 * - `rejected`: the gateway refused the client for good (policy, authentication, bad request).
 * - `gave-up`: reconnecting failed for longer than the configured attempts or deadline.
 */
export type FailureReason =
  | 'connection-lost'
  | 'connect-failed'
  | 'switch-refused'
  | 'session-expired'
  | 'session-moved'
  | 'resume-unavailable'
  | 'rejected'
  | 'gave-up';

export interface ResilientTransportErrorDetails {
  transport?: TransportKind;
  /** HTTP status of the refusal, when there was one. */
  status?: number;
  /** WebSocket close code, when there was one. */
  closeCode?: number;
  /** JSON-RPC error code from the gateway's answer, when there was one. */
  rpcCode?: number;
  /** Reconnect attempts made (for `gave-up`). */
  attempts?: number;
  /** Time spent reconnecting, ms (for `gave-up`). */
  elapsedMs?: number;
  /** The error that made the client give up, or the underlying failure. */
  cause?: unknown;
  /** Overrides the default permanence of `reason` (a refused switch becomes permanent once nothing else works). */
  permanent?: boolean;
}

/** The error the resilient transport reports; `reason` says what happened, `permanent` whether it ends the transport. */
export class ResilientTransportError extends Error {
  override readonly name = 'ResilientTransportError';
  readonly transport: TransportKind | undefined;
  readonly status: number | undefined;
  readonly closeCode: number | undefined;
  readonly rpcCode: number | undefined;
  readonly attempts: number | undefined;
  readonly elapsedMs: number | undefined;
  /** True when reconnecting cannot help: the transport closes with this error. */
  readonly permanent: boolean;

  constructor(
    readonly reason: FailureReason,
    message: string,
    details: ResilientTransportErrorDetails = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.transport = details.transport;
    this.status = details.status;
    this.closeCode = details.closeCode;
    this.rpcCode = details.rpcCode;
    this.attempts = details.attempts;
    this.elapsedMs = details.elapsedMs;
    this.permanent = details.permanent ?? PERMANENT_REASONS.has(reason);
  }
}

const PERMANENT_REASONS = new Set<FailureReason>([
  'session-expired',
  'session-moved',
  'resume-unavailable',
  'rejected',
  'gave-up',
]);

export function isPermanent(err: unknown): boolean {
  return err instanceof ResilientTransportError && err.permanent;
}

/**
 * Statuses that say the connection or session failed, not the one message: the gateway
 * lost the session (404), refused a switch (409), the credentials (401/403), or is
 * overloaded or broken (429, 5xx). Anything else is an answer to that message.
 */
export function isConnectionRefusal(status: number): boolean {
  return (
    status === 404 || status === 409 || status === 401 || status === 403 || status === 429 || status >= 500
  );
}

/** Overload and server errors are worth a reconnect (with backoff); the rest stand as they are. */
export function connectionFailure(
  err: ResilientTransportError,
  transport: TransportKind,
  status: number,
): ResilientTransportError {
  return status === 429 || status >= 500
    ? new ResilientTransportError('connection-lost', err.message, { transport, status })
    : err;
}
