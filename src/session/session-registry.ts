import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { ClientChannel } from './client-channel';
import type { ClientTransport } from '../core/transport-kind';
import { OutboxBudget } from './outbox';
import type { ClientTransportGuard } from './client-transport-guard';
import { DescriptorBudget } from './session-capacity';
import { Session, type SessionHooks } from './session';
import type { SessionStore } from './session-store';
import type { UpstreamPort } from '../pool/upstream-port';

export interface SessionRegistryOptions {
  /** A session without a live channel that stays on Streamable HTTP ends after this long without activity. */
  idleTimeoutMs: number;
  /**
   * A WebSocket or legacy SSE session whose connection went away ends after this long unless
   * the client comes back: its resume window (the idle timeout, if shorter, wins).
   */
  detachedTimeoutMs: number;
  sweepIntervalMs: number;
  outboxMaxMessages: number;
  outboxMaxBytes: number;
  /** How long a message delivered over a live channel stays in the outbox for a resume. */
  outboxResumeWindowMs: number;
  /** Bytes all outboxes together may hold; past it delivered entries of the longest-idle sessions go first. */
  outboxGlobalMaxBytes: number;
  maxInFlight: number;
  dedupeWindow: number;
  /** How long a completed request id is remembered for de-duplication. */
  dedupeWindowMs: number;
  /** A request with no answer and no progress for this long gets UpstreamTimeout (0: never). */
  requestTimeoutMs: number;
  /** Descriptor limit new sessions are admitted against (undefined: the process's soft RLIMIT_NOFILE). */
  fdLimit?: number;
  /** Part of the limit (percent) kept free for the sessions already held. */
  fdHeadroomPercent?: number;
}

/** What a new session offers the router to choose its routing key from (client id, session id, a header). */
export interface RoutingInput {
  clientId: string;
  sessionId: string;
  /** Headers of the request that created the session; read while the upstream is opened, not kept. */
  headers?: IncomingHttpHeaders;
}

/** Opens the upstream port for a new session (the Router + PoolManager seam). */
export type UpstreamOpener = (service: string, routing: RoutingInput) => Promise<UpstreamPort>;

export interface SwitchVerdict {
  allowed: boolean;
  reason?: string;
}

/** Decides whether a session may move to another transport (S2 anti-oscillation in the app). */
export type TransportSwitchGuard = (session: Session, to: ClientTransport) => Promise<SwitchVerdict>;

const ALLOWED: SwitchVerdict = Object.freeze({ allowed: true });
const ALWAYS_ALLOW: TransportSwitchGuard = async () => ALLOWED;

function ignore(): void {}

/** A transport switch S2 is deciding on; concurrent requests for the same move share it. */
interface PendingSwitch {
  to: ClientTransport;
  verdict: Promise<SwitchVerdict>;
}

/** Why retained outbox entries were dropped before anyone acknowledged them. */
export type OutboxDropReason = 'resume_window' | 'global_budget';

/** Counts what the registry dropped (metrics); entries and their bytes. */
export type OutboxDropCounter = (reason: OutboxDropReason, entries: number, bytes: number) => void;

/**
 * Limits on who may open a session (flood protection, src/policy/flood): checked on every
 * create, after the capacity checks; `closed` is called by the session hooks when one ends.
 */
export interface SessionLimits {
  /**
   * Throws an AdmissionRefusedError when `clientId` may not open one more session now. `peer`
   * (the socket's address) is charged against its rate; undefined when it was charged already.
   */
  admit(clientId: string, peer: string | undefined, headers: IncomingHttpHeaders | undefined): void;
  opened(clientId: string): void;
  closed(clientId: string): void;
  /** A connection-carried session (WebSocket, legacy SSE) that has not said `initialize` yet. */
  watchInitialize(session: Session, channel: ClientChannel): void;
}

/** The budget is brought back below this share of its maximum, so it is not enforced on every append. */
const BUDGET_LOW_WATER = 0.9;

/**
 * Creates, finds and expires sessions. One shared sweep timer ends sessions that have been
 * without a live channel for too long (the detached timeout for WebSocket and legacy SSE,
 * the idle timeout for Streamable HTTP), drops what outboxes keep past the resume window,
 * and holds all outboxes to one process-wide byte budget.
 */
export class SessionRegistry {
  private sweepTimer: NodeJS.Timeout | undefined;
  /** At most one S2 decision per session at a time (entries live only while S2 is asked). */
  private readonly pendingSwitches = new Map<Session, PendingSwitch>();
  /** Shared by every session's outbox. */
  readonly outboxBudget: OutboxBudget;
  /** Counts outbox entries dropped by the resume window or the global budget. */
  onOutboxDrop: OutboxDropCounter | undefined = undefined;
  /** The capacity guard every transport goes through (create, or admit before a handshake). */
  readonly descriptors: DescriptorBudget;
  /** Per client transport: breaker and connection cap new sessions pass (the app sets it). */
  transportGuard: ClientTransportGuard | undefined = undefined;
  /** Flood limits on new sessions (per client, per address); the app sets them. */
  sessionLimits: SessionLimits | undefined = undefined;

  constructor(
    private readonly store: SessionStore,
    private readonly options: SessionRegistryOptions,
    private readonly openUpstream: UpstreamOpener,
    private readonly hooks: SessionHooks,
    private readonly switchGuard: TransportSwitchGuard = ALWAYS_ALLOW,
  ) {
    this.outboxBudget = new OutboxBudget(options.outboxGlobalMaxBytes);
    this.outboxBudget.enforce = () => this.enforceOutboxBudget();
    this.descriptors = new DescriptorBudget({
      limit: options.fdLimit,
      headroomPercent: options.fdHeadroomPercent,
    });
  }

  /**
   * Throws SessionCapacityError when a new session would bring the process too close to its
   * descriptor limit, TransportRefusedError when `transport` refuses new sessions (breaker open,
   * connection cap reached), or what the session limits throw for `clientId` from `peer`;
   * transports that must decide before a handshake (WebSocket) call it first.
   */
  admit(transport?: ClientTransport, clientId?: string, peer?: string, headers?: IncomingHttpHeaders): void {
    if (transport !== undefined) this.transportGuard?.check(transport);
    this.descriptors.check();
    if (clientId !== undefined) this.sessionLimits?.admit(clientId, peer, headers);
  }

  /**
   * Asks before a session continues on another transport (failover). Staying on the same
   * transport is always allowed and not counted. One decision per switch: requests that race
   * onto the same new transport while S2 is asked share that pending decision (S2 counts the
   * switch once); one aimed at yet another transport waits for it, then asks for its own.
   */
  async admitTransportSwitch(session: Session, to: ClientTransport): Promise<SwitchVerdict> {
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
  private async switchTo(session: Session, to: ClientTransport): Promise<SwitchVerdict> {
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
   * `peer` (the socket's address) is charged against the session limits' per-address rate.
   * Throws SessionCapacityError, TransportRefusedError or a flood refusal (503 + Retry-After)
   * when it does not fit.
   */
  create(
    clientId: string,
    service: string,
    transport: ClientTransport,
    headers?: IncomingHttpHeaders,
    peer?: string,
  ): Session {
    const guard = this.transportGuard;
    guard?.check(transport);
    this.descriptors.check();
    const limits = this.sessionLimits;
    limits?.admit(clientId, peer, headers);
    this.descriptors.taken();
    const session = new Session({
      id: newSessionId(),
      clientId,
      service,
      transport,
      outbox: {
        maxMessages: this.options.outboxMaxMessages,
        maxBytes: this.options.outboxMaxBytes,
        resumeWindowMs: this.options.outboxResumeWindowMs,
        budget: this.outboxBudget,
      },
      maxInFlight: this.options.maxInFlight,
      dedupeWindow: this.options.dedupeWindow,
      dedupeWindowMs: this.options.dedupeWindowMs,
      hooks: this.hooks,
    });
    this.store.set(session);
    guard?.opened(transport);
    limits?.opened(clientId);
    // A new session is the transport's unit of work: served once its upstream is open, failed on
    // the gateway's side when no replica could be opened for it (counted once per session, not per message).
    this.openUpstream(service, { clientId: session.policyKey, sessionId: session.id, headers }).then(
      (port) => {
        guard?.record(transport, true);
        session.useUpstream(port);
      },
      (err: Error) => {
        guard?.record(transport, false);
        session.upstreamFailed(err.message);
      },
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

  /**
   * Ends every session that waited too long for its client, expires requests and what is kept
   * past the resume window, then enforces the global outbox budget; returns how many sessions
   * ended. Public so tests can drive it without waiting.
   */
  sweep(now = Date.now()): number {
    let ended = 0;
    let windowDrops = 0;
    let windowBytes = 0;
    for (const session of this.store.values()) {
      if (session.closed) {
        this.store.delete(session.id);
        continue;
      }
      if (!session.hasLiveChannel()) {
        const limit = this.detachedLimit(session);
        if (now - session.lastActivity >= limit) {
          this.end(
            session,
            limit === this.options.idleTimeoutMs
              ? 'session expired after idle timeout'
              : 'session expired: its client did not come back within the detached timeout',
          );
          ended++;
          continue;
        }
      }
      if (this.options.requestTimeoutMs > 0) session.expireRequests(now, this.options.requestTimeoutMs);
      const before = session.outbox.byteSize;
      const dropped = session.expireRetained(now);
      if (dropped > 0) {
        windowDrops += dropped;
        windowBytes += before - session.outbox.byteSize;
      }
    }
    if (windowDrops > 0) this.onOutboxDrop?.('resume_window', windowDrops, windowBytes);
    if (this.outboxBudget.bytes > this.outboxBudget.maxBytes) this.enforceOutboxBudget();
    else this.outboxBudget.nextCheck = this.outboxBudget.maxBytes;
    return ended;
  }

  /**
   * How long `session` may be without a live channel. Streamable HTTP has no connection that
   * lasts between POSTs (a client without a GET stream is normal), so only activity counts
   * there: the idle timeout. A WebSocket or legacy SSE session without its connection has
   * lost its client; it gets the (short) detached timeout to come back and resume.
   */
  private detachedLimit(session: Session): number {
    if (session.transport === 'streamable') return this.options.idleTimeoutMs;
    return Math.min(this.options.detachedTimeoutMs, this.options.idleTimeoutMs);
  }

  /**
   * The global outbox budget is exceeded: drop entries that were already delivered (kept only
   * for a resume) from the sessions idle the longest first, until the total is back under the
   * low-water mark. Undelivered entries are never dropped here (their per-session bounds apply).
   * When what is left is mostly undelivered, the next check waits for a tenth of the budget
   * more, so appends do not scan the sessions each time.
   */
  enforceOutboxBudget(): void {
    const budget = this.outboxBudget;
    const target = Math.floor(budget.maxBytes * BUDGET_LOW_WATER);
    let freed = 0;
    let entries = 0;
    if (budget.bytes > target && budget.deliveredBytes > 0) {
      const candidates: Session[] = [];
      for (const s of this.store.values()) if (!s.closed && s.outbox.deliveredBytes > 0) candidates.push(s);
      candidates.sort(byLastActivity);
      for (const s of candidates) {
        if (budget.bytes <= target) break;
        const size = s.outbox.size;
        freed += s.outbox.shedDelivered(budget.bytes - target);
        entries += size - s.outbox.size;
      }
    }
    budget.nextCheck = Math.max(budget.maxBytes, budget.bytes + Math.ceil(budget.maxBytes / 10));
    if (freed > 0) this.onOutboxDrop?.('global_budget', entries, freed);
  }

  /** Ends every session; `code` tells WebSocket clients why (1001 when the gateway shuts down). */
  closeAll(reason: string, code?: number): void {
    for (const session of [...this.store.values()]) this.end(session, reason, code);
  }
}

function byLastActivity(a: Session, b: Session): number {
  return a.lastActivity - b.lastActivity;
}

/** 128 bits from the CSPRNG, base64url: visible ASCII as the spec requires. */
export function newSessionId(): string {
  return randomBytes(16).toString('base64url');
}
