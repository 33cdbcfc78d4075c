import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { ClientChannel } from '../../session/client-channel';
import { ANONYMOUS_CLIENT } from '../../core/client-id';
import { AdmissionRefusedError } from '../../core/refusal';
import { EndReason } from '../../core/end-reason';
import type { FloodLimits } from '../../core/limits';
import type { TrustedProxies } from '../../core/trusted-proxies';
import { TokenBuckets } from './token-buckets';

/** Why something was refused or cut; the keys of GatewayMetrics.floodRefusals. */
export type FloodReason =
  | 'connections'
  | 'connections_per_ip'
  | 'connect_rate'
  | 'session_rate'
  | 'sessions_per_client'
  | 'init_deadline'
  | 'request_timeout'
  | 'header_too_large';

/** How long a client refused for a connection cap is told to wait: connections end all the time. */
export const CONNECTION_RETRY_AFTER_MS = 1000;
/** Sessions end slower (idle timeout, the client's own DELETE). */
export const SESSION_RETRY_AFTER_MS = 5000;
/** A refused connection that sends no request is dropped after this long (it holds a descriptor). */
const REFUSED_LINGER_MS = 1000;
/** Buckets of addresses that stopped connecting are dropped this often. */
const BUCKET_SWEEP_MS = 10_000;

const MESSAGES: Record<FloodReason, string> = {
  connections: 'the gateway is at its connection cap',
  connections_per_ip: 'too many connections from this address',
  connect_rate: 'this address opens connections too fast',
  session_rate: 'this address opens sessions too fast',
  sessions_per_client: 'this client holds too many sessions',
  init_deadline: 'initialize was not sent in time',
  request_timeout: 'the request was not received in time',
  header_too_large: 'the request head is too large',
};

/** Refused by a flood limit: 503 with Retry-After (WebSocket: the upgrade gets the 503). */
export class FloodRefusedError extends AdmissionRefusedError {
  readonly code: string;

  constructor(
    readonly reason: FloodReason,
    retryAfterMs: number,
  ) {
    super(`Service unavailable: ${MESSAGES[reason]}; retry later`, retryAfterMs);
    this.code = `flood_${reason}`;
    this.name = 'FloodRefusedError';
  }
}

/** What the guard keeps on each accepted socket (one small object; no closure per connection). */
class ConnectionState {
  constructor(
    readonly guard: FloodGuard,
    /** The per-IP key it was counted under; undefined when only the global cap counted it. */
    readonly ip: string | undefined,
    /** Set when the connection was refused: its requests are answered 503, it is not counted. */
    readonly refusal: FloodRefusedError | undefined,
  ) {}
}

const STATE = Symbol('flood state');
type GuardedSocket = Socket & { [STATE]?: ConnectionState };

/** The refusal decided when `socket` was accepted, if it was refused. One property read per request. */
export function socketRefusal(socket: Socket | null | undefined): FloodRefusedError | undefined {
  return (socket as GuardedSocket | null | undefined)?.[STATE]?.refusal;
}

function onSocketClose(this: GuardedSocket): void {
  const state = this[STATE];
  if (state !== undefined && state.refusal === undefined) state.guard.disconnected(state.ip);
}

function destroyRefused(this: Socket): void {
  this.destroy();
}

/** What the initialize deadline watches: a session with one connection that must say initialize. */
export interface InitWatched {
  readonly protocolVersion: string | undefined;
  readonly closed: boolean;
}

class PendingInit {
  constructor(
    readonly session: InitWatched,
    readonly channel: ClientChannel,
    readonly deadline: number,
  ) {}
}

/**
 * Connection and session flood limits, in plain TypeScript (the Nest FloodService owns one):
 * counted when a socket is accepted, when a session is created, and by one shared timer for
 * the initialize deadline. Per connection it costs one small object and two counter updates;
 * per message nothing.
 */
export class FloodGuard {
  private limits: FloodLimits;
  private live = 0;
  private readonly perIp = new Map<string, number>();
  private readonly connectBuckets: TokenBuckets;
  private readonly sessionBuckets: TokenBuckets;
  private readonly clientSessions = new Map<string, number>();
  private pending: PendingInit[] = [];
  private timer: NodeJS.Timeout | undefined = undefined;
  private lastSweep = 0;
  /** Ends a session whose connection missed the initialize deadline (the registry's end()). */
  endSession: ((session: InitWatched, reason: string) => void) | undefined = undefined;

  constructor(
    limits: FloodLimits,
    private readonly proxies: TrustedProxies,
    /** Refusals by reason (GatewayMetrics.floodRefusals). */
    readonly refusals: Map<string, number> = new Map(),
    maxTrackedAddresses = 100_000,
  ) {
    this.limits = { ...limits };
    this.connectBuckets = new TokenBuckets(
      limits.connectRatePerIp,
      limits.connectBurstPerIp,
      maxTrackedAddresses,
    );
    this.sessionBuckets = new TokenBuckets(
      limits.sessionRatePerIp,
      limits.sessionBurstPerIp,
      maxTrackedAddresses,
    );
  }

  get current(): Readonly<FloodLimits> {
    return this.limits;
  }

  /** Live connections counted (refused ones are not). */
  get connections(): number {
    return this.live;
  }

  connectionsFrom(ip: string): number {
    return this.perIp.get(ip) ?? 0;
  }

  sessionsOf(clientId: string): number {
    return this.clientSessions.get(clientId) ?? 0;
  }

  /** Changes limits live (S5 policy_update); the next connection or session sees them. */
  update(changes: Partial<FloodLimits>): void {
    this.limits = { ...this.limits, ...changes };
    this.connectBuckets.configure(this.limits.connectRatePerIp, this.limits.connectBurstPerIp);
    this.sessionBuckets.configure(this.limits.sessionRatePerIp, this.limits.sessionBurstPerIp);
  }

  count(reason: FloodReason): void {
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
  }

  // ------------------------------------------------------------------ connections

  /**
   * A socket was accepted. Over a cap it is marked refused (its first request gets 503 with
   * Retry-After, then it closes; one that sends nothing is dropped after a second) and not
   * counted. A trusted proxy's connection carries many clients: only the global cap applies to it.
   */
  connected(socket: Socket, now = Date.now()): void {
    const s = socket as GuardedSocket;
    const limits = this.limits;
    let refusal: FloodRefusedError | undefined;
    let ip: string | undefined;
    if (limits.maxConnections > 0 && this.live >= limits.maxConnections) {
      refusal = new FloodRefusedError('connections', CONNECTION_RETRY_AFTER_MS);
    } else {
      const peer = unmapped(socket.remoteAddress);
      if (!this.proxies.trusts(peer)) {
        ip = peer;
        const held = this.perIp.get(peer) ?? 0;
        if (limits.maxConnectionsPerIp > 0 && held >= limits.maxConnectionsPerIp) {
          refusal = new FloodRefusedError('connections_per_ip', CONNECTION_RETRY_AFTER_MS);
        } else {
          const wait = this.connectBuckets.take(peer, now);
          if (wait > 0) refusal = new FloodRefusedError('connect_rate', wait);
        }
      }
    }
    if (refusal !== undefined) {
      this.count(refusal.reason);
      s[STATE] = new ConnectionState(this, undefined, refusal);
      socket.setTimeout(REFUSED_LINGER_MS);
      socket.once('timeout', destroyRefused);
      return;
    }
    this.live++;
    if (ip !== undefined) this.perIp.set(ip, (this.perIp.get(ip) ?? 0) + 1);
    s[STATE] = new ConnectionState(this, ip, undefined);
    socket.on('close', onSocketClose);
  }

  disconnected(ip: string | undefined): void {
    this.live--;
    if (ip === undefined) return;
    const n = (this.perIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.perIp.delete(ip);
    else this.perIp.set(ip, n);
  }

  /** Counts what Node's HTTP parser refused (its 'clientError'): slow heads and bodies, huge heads. */
  clientError(code: string | undefined): void {
    if (code === 'ERR_HTTP_REQUEST_TIMEOUT') this.count('request_timeout');
    else if (code === 'HPE_HEADER_OVERFLOW') this.count('header_too_large');
  }

  // ------------------------------------------------------------------ sessions (SessionLimits)

  /**
   * Throws FloodRefusedError when `clientId` holds its cap of sessions (the anonymous client has
   * none), or when the client's
   * address (X-Forwarded-For only from a trusted proxy) opens sessions too fast. Without `peer`
   * the address was charged already (a WebSocket upgrade is admitted before its session exists).
   */
  admit(clientId: string, peer: string | undefined, headers: IncomingHttpHeaders | undefined): void {
    const max = this.limits.maxSessionsPerClient;
    // Every client that names no id is "anonymous": one cap for all of them would be a cap on the
    // whole unauthenticated gateway. They are held by their address' session rate instead.
    if (max > 0 && clientId !== ANONYMOUS_CLIENT && (this.clientSessions.get(clientId) ?? 0) >= max) {
      this.count('sessions_per_client');
      throw new FloodRefusedError('sessions_per_client', SESSION_RETRY_AFTER_MS);
    }
    if (peer === undefined || this.sessionBuckets.disabled) return;
    const ip = this.proxies.clientAddress(peer, headers ?? {});
    const wait = this.sessionBuckets.take(ip, Date.now());
    if (wait > 0) {
      this.count('session_rate');
      throw new FloodRefusedError('session_rate', wait);
    }
  }

  opened(clientId: string): void {
    this.clientSessions.set(clientId, (this.clientSessions.get(clientId) ?? 0) + 1);
  }

  closed(clientId: string): void {
    const n = (this.clientSessions.get(clientId) ?? 1) - 1;
    if (n <= 0) this.clientSessions.delete(clientId);
    else this.clientSessions.set(clientId, n);
  }

  /**
   * A WebSocket or legacy SSE connection opened a session before saying `initialize`: unless it
   * does within the deadline, the connection is closed (1008; SSE: an error event) and the session ends.
   */
  watchInitialize(session: InitWatched, channel: ClientChannel, now = Date.now()): void {
    if (this.limits.initDeadlineMs <= 0) return;
    this.pending.push(new PendingInit(session, channel, now + this.limits.initDeadlineMs));
  }

  get pendingInitializations(): number {
    return this.pending.length;
  }

  /** One tick of the shared timer: initialize deadlines, and now and then the idle buckets. */
  tick(now = Date.now()): void {
    if (this.pending.length > 0) {
      const keep: PendingInit[] = [];
      for (const p of this.pending) {
        if (p.session.closed || p.channel.closed || p.session.protocolVersion !== undefined) continue;
        if (now < p.deadline) {
          keep.push(p);
          continue;
        }
        this.count('init_deadline');
        const reason = `Policy: initialize not sent within ${this.limits.initDeadlineMs} ms`;
        p.channel.close(EndReason.Policy, reason);
        this.endSession?.(p.session, reason);
      }
      this.pending = keep;
    }
    if (now - this.lastSweep >= BUCKET_SWEEP_MS) {
      this.lastSweep = now;
      this.connectBuckets.sweep(now);
      this.sessionBuckets.sweep(now);
    }
  }

  /** Starts the one shared timer (its period follows the initialize deadline, at most 1 s). */
  start(): void {
    if (this.timer) return;
    const period = Math.max(50, Math.min(1000, Math.floor((this.limits.initDeadlineMs || 4000) / 4)));
    this.timer = setInterval(() => this.tick(), period);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.pending = [];
  }
}

/** `::ffff:127.0.0.2` → `127.0.0.2`: one spelling per address, as TrustedProxies writes it. */
function unmapped(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  return address.startsWith('::ffff:') && address.indexOf('.') !== -1 ? address.slice(7) : address;
}
