import {
  Breakers,
  type BreakerListener,
  type BreakerSettings,
  type BreakerState,
  type ForcedBreakerState,
} from '../pool/replica-breakers';
import type { ClientTransport } from '../core/transport-kind';
import { AdmissionRefusedError } from '../core/refusal';

export const CLIENT_TRANSPORTS: readonly ClientTransport[] = ['streamable', 'sse', 'ws'];

/** How long a client refused by an open transport breaker is told to wait: about one probe interval. */
const MIN_RETRY_AFTER_MS = 1000;
/** How long a client refused by a connection cap is told to wait: sessions end or the cap is raised. */
const CAP_RETRY_AFTER_MS = 5000;

/** The breaker target (and algedonic source) of a client transport. */
export function transportTarget(kind: ClientTransport): string {
  return `transport:${kind}`;
}

export function isClientTransport(name: string): name is ClientTransport {
  return name === 'streamable' || name === 'sse' || name === 'ws';
}

/** Refused: the client transport's breaker is open, or it holds as many connections as S3 allows. */
export class TransportRefusedError extends AdmissionRefusedError {
  constructor(
    readonly code: 'transport_unavailable' | 'transport_capacity',
    message: string,
    retryAfterMs: number,
  ) {
    super(message, retryAfterMs);
    this.name = 'TransportRefusedError';
  }
}

/**
 * Guards each client transport (Streamable HTTP, legacy SSE, WebSocket) as a whole: one breaker
 * per transport, fed by gateway-side failures (internal errors caught by an error boundary, a
 * new session whose upstream could not be opened) and by served session creations, and a cap
 * on the sessions opened over it (S3 `allocate_connections`). While either says no, new sessions
 * on that transport are refused; sessions already open keep working.
 *
 * What a cap counts: WebSocket connections and open legacy SSE streams, as those transports
 * already keep them in a set (`measure`); for Streamable HTTP, which holds no connection between
 * POSTs, the live sessions created on it (two integer updates per session). Nothing per message.
 */
export class ClientTransportGuard {
  readonly breakers: Breakers;
  private readonly live: Record<ClientTransport, number> = { streamable: 0, sse: 0, ws: 0 };
  /** Where a transport counts its own live connections (WebSocket connections, open SSE streams). */
  private readonly gauges: Partial<Record<ClientTransport, () => number>> = {};
  /** 0: no cap. */
  private readonly caps: Record<ClientTransport, number> = { streamable: 0, sse: 0, ws: 0 };
  private readonly retryAfterMs: number;

  constructor(settings: BreakerSettings, listener: BreakerListener) {
    this.breakers = new Breakers(listener);
    for (const kind of CLIENT_TRANSPORTS) this.breakers.ensure(transportTarget(kind), settings);
    this.retryAfterMs = Math.max(MIN_RETRY_AFTER_MS, settings.resetTimeoutMs);
  }

  /** Throws TransportRefusedError when a new session on `kind` must be refused. Takes no place. */
  check(kind: ClientTransport): void {
    if (!this.breakers.allows(transportTarget(kind))) {
      throw new TransportRefusedError(
        'transport_unavailable',
        `Service unavailable: the ${kind} transport is failing (circuit open); retry later or use another transport`,
        this.retryAfterMs,
      );
    }
    const cap = this.caps[kind];
    if (cap > 0 && this.liveCount(kind) >= cap) {
      throw new TransportRefusedError(
        'transport_capacity',
        `Service unavailable: the ${kind} transport is at its connection cap (${cap}); retry later`,
        CAP_RETRY_AFTER_MS,
      );
    }
  }

  /**
   * The transport counts its live connections itself (it already keeps them in a set): the cap
   * applies to that count instead of the sessions created on it.
   */
  measure(kind: ClientTransport, gauge: () => number): void {
    this.gauges[kind] = gauge;
  }

  /** What the cap of `kind` is held against: its connections when measured, else its live sessions. */
  liveCount(kind: ClientTransport): number {
    const gauge = this.gauges[kind];
    return gauge === undefined ? this.live[kind] : gauge();
  }

  /** A session was created on `kind` (counted until it ends). */
  opened(kind: ClientTransport): void {
    this.live[kind]++;
  }

  closed(kind: ClientTransport): void {
    if (this.live[kind] > 0) this.live[kind]--;
  }

  /** One outcome of new work on the transport: served (true) or failed on the gateway's side. */
  record(kind: ClientTransport, ok: boolean): void {
    this.breakers.record(transportTarget(kind), ok);
  }

  /** S3 allocate_connections: `count` ≤ 0 removes the cap. Sessions above a lowered cap are kept. */
  setCap(kind: ClientTransport, count: number): void {
    this.caps[kind] = count > 0 ? Math.floor(count) : 0;
  }

  /** S3 force_circuit_state. */
  force(kind: ClientTransport, state: ForcedBreakerState): void {
    this.breakers.force(transportTarget(kind), state);
  }

  state(kind: ClientTransport): BreakerState {
    return this.breakers.state(transportTarget(kind));
  }

  stats(): Record<ClientTransport, { live: number; cap: number; state: BreakerState }> {
    const out = {} as Record<ClientTransport, { live: number; cap: number; state: BreakerState }>;
    for (const kind of CLIENT_TRANSPORTS) {
      out[kind] = { live: this.liveCount(kind), cap: this.caps[kind], state: this.state(kind) };
    }
    return out;
  }

  shutdown(): void {
    this.breakers.shutdown();
  }
}
