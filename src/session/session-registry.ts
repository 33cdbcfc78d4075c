import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { ChannelKind } from './client-channel';
import { Session, type SessionHooks } from './session';
import type { SessionStore } from './session-store';
import type { UpstreamLease } from '../upstream/upstream-connection';

export interface SessionRegistryOptions {
  idleTimeoutMs: number;
  sweepIntervalMs: number;
  outboxMaxMessages: number;
  outboxMaxBytes: number;
  maxInFlight: number;
  dedupeWindow: number;
  /** A request with no answer and no progress for this long gets UpstreamTimeout (0: never). */
  requestTimeoutMs: number;
}

/** What a new session offers the router to choose its routing key from (client id, session id, a header). */
export interface RoutingInput {
  clientId: string;
  sessionId: string;
  /** Headers of the request that created the session; read while the upstream is opened, not kept. */
  headers?: IncomingHttpHeaders;
}

/** Opens the upstream for a new session (the Router + PoolManager seam). */
export type UpstreamOpener = (service: string, routing: RoutingInput) => Promise<UpstreamLease>;

export interface SwitchVerdict {
  allowed: boolean;
  reason?: string;
}

/** Decides whether a session may move to another transport (S2 anti-oscillation in the app). */
export type TransportSwitchGuard = (session: Session, to: ChannelKind) => Promise<SwitchVerdict>;

const ALLOWED: SwitchVerdict = Object.freeze({ allowed: true });
const ALWAYS_ALLOW: TransportSwitchGuard = async () => ALLOWED;

function ignore(): void {}

/** A transport switch S2 is deciding on; concurrent requests for the same move share it. */
interface PendingSwitch {
  to: ChannelKind;
  verdict: Promise<SwitchVerdict>;
}

/**
 * Creates, finds and expires sessions. One shared sweep timer ends sessions that have
 * been idle (no live channel, no message) for longer than the idle timeout.
 */
export class SessionRegistry {
  private sweepTimer: NodeJS.Timeout | undefined;
  /** At most one S2 decision per session at a time (entries live only while S2 is asked). */
  private readonly pendingSwitches = new Map<Session, PendingSwitch>();

  constructor(
    private readonly store: SessionStore,
    private readonly options: SessionRegistryOptions,
    private readonly openUpstream: UpstreamOpener,
    private readonly hooks: SessionHooks,
    private readonly switchGuard: TransportSwitchGuard = ALWAYS_ALLOW,
  ) {}

  /**
   * Asks before a session continues on another transport (failover). Staying on the same
   * transport is always allowed and not counted. One decision per switch: requests that race
   * onto the same new transport while S2 is asked share that pending decision (S2 counts the
   * switch once); one aimed at yet another transport waits for it, then asks for its own.
   */
  async admitTransportSwitch(session: Session, to: ChannelKind): Promise<SwitchVerdict> {
    for (;;) {
      const pending = this.pendingSwitches.get(session);
      if (pending === undefined) break;
      if (pending.to === to) return pending.verdict;
      await pending.verdict.catch(ignore);
    }
    if (session.transport === to) return ALLOWED;
    const verdict = this.switchTo(session, to);
    this.pendingSwitches.set(session, { to, verdict });
    try {
      return await verdict;
    } finally {
      this.pendingSwitches.delete(session);
    }
  }

  /** Asks S2; on approval the session is marked as moved before anyone else decides. */
  private async switchTo(session: Session, to: ChannelKind): Promise<SwitchVerdict> {
    const verdict = await this.switchGuard(session, to);
    if (verdict.allowed && !session.closed) {
      session.transport = to;
      // Streamable HTTP has no connection that carries everything: the old one must let go.
      if (to === 'streamable') session.detachPrimary();
    }
    return verdict;
  }

  start(): void {
    if (this.sweepTimer) return;
    this.sweepTimer = setInterval(() => this.sweep(), this.options.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /**
   * Creates a session and starts acquiring its upstream; messages sent meanwhile wait for it.
   * `headers` (of the creating request) let a service route on a header.
   */
  create(clientId: string, service: string, transport: ChannelKind, headers?: IncomingHttpHeaders): Session {
    const session = new Session({
      id: newSessionId(),
      clientId,
      service,
      transport,
      outbox: { maxMessages: this.options.outboxMaxMessages, maxBytes: this.options.outboxMaxBytes },
      maxInFlight: this.options.maxInFlight,
      dedupeWindow: this.options.dedupeWindow,
      hooks: this.hooks,
    });
    this.store.set(session);
    this.openUpstream(service, { clientId: session.policyKey, sessionId: session.id, headers }).then(
      (lease) => session.useUpstream(lease),
      (err: Error) => session.upstreamFailed(err.message),
    );
    return session;
  }

  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const session = this.store.get(id);
    return session && !session.closed ? session : undefined;
  }

  /** Ends a session (DELETE, expiry, shutdown). */
  end(session: Session, reason: string, code?: number): void {
    this.store.delete(session.id);
    session.close(reason, code);
  }

  get size(): number {
    return this.store.size;
  }

  all(): IterableIterator<Session> {
    return this.store.values();
  }

  /** Ends every idle session; returns how many. Public so tests can drive it without waiting. */
  sweep(now = Date.now()): number {
    let ended = 0;
    for (const session of this.store.values()) {
      if (session.closed) {
        this.store.delete(session.id);
        continue;
      }
      if (now - session.lastActivity >= this.options.idleTimeoutMs && !session.hasLiveChannel()) {
        this.end(session, 'session expired after idle timeout');
        ended++;
        continue;
      }
      if (this.options.requestTimeoutMs > 0) session.expireRequests(now, this.options.requestTimeoutMs);
    }
    return ended;
  }

  /** Ends every session; `code` tells WebSocket clients why (1001 when the gateway shuts down). */
  closeAll(reason: string, code?: number): void {
    for (const session of [...this.store.values()]) this.end(session, reason, code);
  }
}

/** 128 bits from the CSPRNG, base64url: visible ASCII as the spec requires. */
export function newSessionId(): string {
  return randomBytes(16).toString('base64url');
}
