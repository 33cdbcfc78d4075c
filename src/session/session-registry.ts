import { randomBytes } from 'node:crypto';
import type { ChannelKind } from './client-channel';
import { DescriptorBudget } from './session-capacity';
import { Session, type SessionHooks } from './session';
import type { SessionStore } from './session-store';
import type { UpstreamPort } from '../pool/upstream-port';

export interface SessionRegistryOptions {
  idleTimeoutMs: number;
  sweepIntervalMs: number;
  outboxMaxMessages: number;
  outboxMaxBytes: number;
  maxInFlight: number;
  dedupeWindow: number;
  /** A request with no answer and no progress for this long gets UpstreamTimeout (0: never). */
  requestTimeoutMs: number;
  /** Descriptor limit new sessions are admitted against (undefined: the process's soft RLIMIT_NOFILE). */
  fdLimit?: number;
  /** Part of the limit (percent) kept free for the sessions already held. */
  fdHeadroomPercent?: number;
}

/** Opens the upstream port for a new session (the Router + PoolManager seam). */
export type UpstreamOpener = (service: string, routingKey: string) => Promise<UpstreamPort>;

export interface SwitchVerdict {
  allowed: boolean;
  reason?: string;
}

/** Decides whether a session may move to another transport (S2 anti-oscillation in the app). */
export type TransportSwitchGuard = (session: Session, to: ChannelKind) => Promise<SwitchVerdict>;

const ALWAYS_ALLOW: TransportSwitchGuard = async () => ({ allowed: true });

/**
 * Creates, finds and expires sessions. One shared sweep timer ends sessions that have
 * been idle (no live channel, no message) for longer than the idle timeout.
 */
export class SessionRegistry {
  private sweepTimer: NodeJS.Timeout | undefined;
  /** The capacity guard every transport goes through (create, or admit before a handshake). */
  readonly descriptors: DescriptorBudget;

  constructor(
    private readonly store: SessionStore,
    private readonly options: SessionRegistryOptions,
    private readonly openUpstream: UpstreamOpener,
    private readonly hooks: SessionHooks,
    private readonly switchGuard: TransportSwitchGuard = ALWAYS_ALLOW,
  ) {
    this.descriptors = new DescriptorBudget({
      limit: options.fdLimit,
      headroomPercent: options.fdHeadroomPercent,
    });
  }

  /**
   * Throws SessionCapacityError when a new session would bring the process too close to its
   * descriptor limit; transports that must decide before a handshake (WebSocket) call it first.
   */
  admit(): void {
    this.descriptors.check();
  }

  /**
   * Asks before a session continues on another transport (failover). Staying on the same
   * transport is always allowed and not counted. On approval the session is marked as
   * moved, so a second connection racing in on the same transport is not counted twice.
   */
  async admitTransportSwitch(session: Session, to: ChannelKind): Promise<SwitchVerdict> {
    if (session.transport === to) return { allowed: true };
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
   * Throws SessionCapacityError (503 + Retry-After, WebSocket 1013) when it does not fit.
   */
  create(clientId: string, service: string, transport: ChannelKind): Session {
    this.descriptors.check();
    this.descriptors.taken();
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
    this.openUpstream(service, session.policyKey).then(
      (port) => session.useUpstream(port),
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
