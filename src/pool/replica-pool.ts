import { createPool, type Pool } from 'generic-pool';
import type { ReplicaConfig } from '../config/gateway-config';
import type { UpstreamConnection } from '../upstream/upstream-connection';
import { onBackgroundFailure } from './background-failures';
import { SharedUpstream, type SharedUpstreamOwner } from './shared-upstream';
import type { PoolFigures } from '../telemetry/stats-source';

const onDestroyFailure = onBackgroundFailure('replica-pool.destroy');
const onReleaseFailure = onBackgroundFailure('replica-pool.release');
const onDrainFailure = onBackgroundFailure('replica-pool.drain');

/** Pool sizing per service (gateway.yaml `pool:`); README explains the defaults. */
export interface PoolSettings {
  min: number;
  max: number;
  /** Requests that may wait for a free upstream session; past it they are refused at once. */
  maxWaitingClients: number;
  /** How long a request waits for a free upstream session before it is refused (−31003). */
  acquireTimeoutMs: number;
  /** An upstream session unused this long is closed (down to `min`). */
  idleTimeoutMs: number;
  evictionRunIntervalMs: number;
  /** Ping an upstream session that sat idle before lending it out; a dead one is replaced. */
  testOnBorrow: boolean;
  /** Client requests one upstream session carries at once (1: server requests are always attributable). */
  maxConcurrentPerConnection: number;
}

/** A pool's figures, in the shape telemetry reports them (stats, /metrics). */
export type PoolStats = PoolFigures;

/** A borrowed upstream session younger than this since its last answer is lent without a ping. */
const FRESH_MS = 5000;
/**
 * After a failed start, how long the replica counts as unreachable (requests go to the next
 * replica) before one is let through to probe it; also the pause before generic-pool, which
 * retries a failed create for as long as a checkout waits, may try again (no tight connect loop).
 */
export const UNREACHABLE_PROBE_MS = 1000;

/**
 * A checkout failed because no upstream session of the replica could be started (connect
 * refused, spawn failed, …): nothing of the request reached the replica, so it may go to the next.
 */
export class ReplicaUnreachableError extends Error {
  override readonly name = 'ReplicaUnreachableError';
}

/**
 * The generic-pool pool of shared upstream sessions of one replica (pooled mode). A client
 * request checks one out for its duration; with maxConcurrentPerConnection > 1 a checked-out
 * session takes further requests until it is full, and goes back when it carries none.
 */
export class ReplicaPool {
  private readonly pool: Pool<SharedUpstream>;
  /** Borrowed sessions that can carry more requests (maxConcurrentPerConnection > 1, or pinned). */
  private readonly open = new Set<SharedUpstream>();
  /** Sessions kept borrowed while something lives on them (the subscription anchor); they still carry requests. */
  private readonly pinned = new Set<SharedUpstream>();
  private readonly lastUsed = new WeakMap<SharedUpstream, number>();
  /** Every live session, borrowed or not, so that stop() can close them all. */
  private readonly all = new Set<SharedUpstream>();
  /**
   * The initialize result of the newest upstream session that started: clients' initialize is
   * answered from it without a checkout, so new sessions open even while every upstream session
   * is busy. Refreshed whenever an upstream session (re)starts.
   */
  private initialized: Record<string, unknown> | undefined = undefined;
  private stopped = false;
  /** Date.now() of the last failed start while none has succeeded since; undefined when reachable. */
  private downSince: number | undefined = undefined;
  /** Paced re-creates waiting out their pause: stop() wakes them so the pool can clear. */
  private readonly pauses = new Set<() => void>();
  /** Checkouts waiting in generic-pool's queue: told at once when a start fails. */
  private readonly waiting = new Set<(err: Error) => void>();

  constructor(
    readonly replica: ReplicaConfig,
    private settings: PoolSettings,
    createConnection: () => UpstreamConnection,
    owner: (pool: ReplicaPool) => SharedUpstreamOwner,
    private readonly handshakeTimeoutMs: number,
  ) {
    const asOwner = owner(this);
    this.pool = createPool<SharedUpstream>(
      {
        create: async () => {
          const shared = new SharedUpstream(createConnection(), asOwner);
          try {
            await shared.start(this.handshakeTimeoutMs);
          } catch (err) {
            await shared.close().catch(() => undefined);
            asOwner.record(false);
            this.downSince = Date.now();
            const why = new ReplicaUnreachableError(
              `replica ${replica.id} could not be reached: ${(err as Error).message}`,
            );
            for (const fail of [...this.waiting]) fail(why);
            // generic-pool creates again at once while a checkout waits: pace it (stop() cuts it short).
            if (!this.stopped) await this.pause(UNREACHABLE_PROBE_MS);
            throw err;
          }
          this.downSince = undefined;
          this.all.add(shared);
          this.initialized = shared.initializeResult;
          return shared;
        },
        destroy: async (shared) => {
          this.open.delete(shared);
          this.pinned.delete(shared);
          this.all.delete(shared);
          await shared.close().catch(() => undefined);
        },
        validate: async (shared) => {
          if (shared.dead || shared.retired) return false;
          const last = this.lastUsed.get(shared) ?? 0;
          if (Date.now() - last < FRESH_MS) return true;
          return shared.ping(this.handshakeTimeoutMs);
        },
      },
      {
        min: settings.min,
        max: settings.max,
        maxWaitingClients: settings.maxWaitingClients,
        acquireTimeoutMillis: settings.acquireTimeoutMs,
        // "Soft" idle eviction stops at min; generic-pool's hard idleTimeoutMillis would also
        // evict the min sessions and respawn them at once (a stdio child churned every timeout).
        softIdleTimeoutMillis: settings.idleTimeoutMs,
        idleTimeoutMillis: Number.MAX_SAFE_INTEGER,
        evictionRunIntervalMillis: settings.evictionRunIntervalMs,
        testOnBorrow: settings.testOnBorrow,
      },
    );
    // A factory that keeps failing (replica down) must not leave an unhandled rejection behind.
    this.pool.on('factoryCreateError', () => undefined);
    this.pool.on('factoryDestroyError', () => undefined);
  }

  /** A session that can carry one more request: a partly used borrowed one, or a checkout. */
  async checkout(): Promise<SharedUpstream> {
    for (const shared of this.open) {
      if (shared.load < this.settings.maxConcurrentPerConnection && !shared.dead) return shared;
    }
    let shared = await this.acquire();
    // Without testOnBorrow an idle session whose connection died is still lent: replace it here.
    while (shared.dead || shared.retired) {
      this.pool.destroy(shared).catch(onDestroyFailure);
      shared = await this.acquire();
    }
    if (this.settings.maxConcurrentPerConnection > 1) this.open.add(shared);
    return shared;
  }

  /**
   * True while the replica's last start failed and the probe pause has not passed: new requests
   * should go to the next replica.
   */
  get unreachable(): boolean {
    return this.downSince !== undefined && Date.now() - this.downSince < UNREACHABLE_PROBE_MS;
  }

  /**
   * generic-pool's acquire, except that a start failing meanwhile rejects it at once
   * (ReplicaUnreachableError) instead of leaving it to retry until the acquire timeout; a session
   * the abandoned acquire still gets later goes straight back.
   */
  private acquire(): Promise<SharedUpstream> {
    if (this.unreachable && this.pool.available === 0) {
      return Promise.reject(new ReplicaUnreachableError(`replica ${this.replica.id} is unreachable`));
    }
    const acquiring = this.pool.acquire();
    return new Promise<SharedUpstream>((resolve, reject) => {
      let done = false;
      const fail = (err: Error) => {
        if (done) return;
        done = true;
        this.waiting.delete(fail);
        reject(err);
      };
      this.waiting.add(fail);
      acquiring.then(
        (shared) => {
          if (!done) {
            done = true;
            this.waiting.delete(fail);
            resolve(shared);
          } else if (this.pool.isBorrowedResource(shared)) {
            this.pool.release(shared).catch(onReleaseFailure);
          }
        },
        (err: Error) => fail(err),
      );
    });
  }

  /** A session kept out of the pool until unpinned (the subscription anchor); it still carries requests. */
  async pin(): Promise<SharedUpstream> {
    const shared = await this.checkout();
    this.pinned.add(shared);
    this.open.add(shared);
    return shared;
  }

  unpin(shared: SharedUpstream): void {
    this.pinned.delete(shared);
    this.settle(shared);
  }

  owns(shared: SharedUpstream): boolean {
    return this.all.has(shared);
  }

  /** Called after each answer: a session that carries nothing goes back to the pool. */
  settle(shared: SharedUpstream): void {
    this.lastUsed.set(shared, Date.now());
    if (shared.load > 0 || this.stopped || (this.pinned.has(shared) && !shared.dead)) return;
    this.open.delete(shared);
    if (!this.pool.isBorrowedResource(shared)) return;
    // A retired session (see SharedUpstream.retired) is replaced rather than lent again.
    if (shared.dead || shared.retired) this.pool.destroy(shared).catch(onDestroyFailure);
    else this.pool.release(shared).catch(onReleaseFailure);
  }

  /** The connection of a session is gone: replace it. */
  lost(shared: SharedUpstream): void {
    this.open.delete(shared);
    this.pinned.delete(shared);
    if (this.pool.isBorrowedResource(shared)) this.pool.destroy(shared).catch(onDestroyFailure);
  }

  /** The cached initialize result (to answer a client's initialize), starting a session if none ever did. */
  async initializeResult(): Promise<Record<string, unknown>> {
    if (this.initialized) return this.initialized;
    const shared = await this.checkout();
    const result = shared.initializeResult!;
    this.settle(shared);
    return result;
  }

  /**
   * Live resize (S3 allocate_connections). generic-pool has no public setter; its sizes live in
   * `_config` and it re-reads them whenever it dispenses, so the new bounds take effect at once.
   */
  resize(max: number, min = Math.min(this.settings.min, max)): void {
    this.settings = { ...this.settings, max, min };
    const internals = this.pool as unknown as {
      _config: { max: number; min: number };
      _ensureMinimum(): void;
      _dispense(): void;
    };
    internals._config.max = max;
    internals._config.min = min;
    internals._ensureMinimum();
    internals._dispense();
  }

  /**
   * New settings from a live configuration change: sizes as resize() does, and the wait queue,
   * acquire timeout, idle timeout and validation that generic-pool reads from `_config` per
   * acquire or eviction run. The eviction interval stays what the pool started with.
   */
  reconfigure(settings: PoolSettings): void {
    const internals = this.pool as unknown as {
      _config: {
        maxWaitingClients: number;
        acquireTimeoutMillis: number;
        softIdleTimeoutMillis: number;
        testOnBorrow: boolean;
      };
    };
    internals._config.maxWaitingClients = settings.maxWaitingClients;
    internals._config.acquireTimeoutMillis = settings.acquireTimeoutMs;
    internals._config.softIdleTimeoutMillis = settings.idleTimeoutMs;
    internals._config.testOnBorrow = settings.testOnBorrow;
    this.settings = settings;
    this.resize(settings.max, Math.min(settings.min, settings.max));
  }

  stats(): PoolStats {
    return {
      replica: this.replica.id!,
      size: this.pool.size,
      available: this.pool.available,
      borrowed: this.pool.borrowed,
      pending: this.pool.pending,
      max: this.pool.max,
      min: this.pool.min,
    };
  }

  /** Resolves after `ms`, or at once when the pool stops (generic-pool's clear waits for creates). */
  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.pauses.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms).unref();
      this.pauses.add(wake);
    });
  }

  /** Closes every session, borrowed ones included (shutdown does not wait for answers here). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const wake of [...this.pauses]) wake();
    this.open.clear();
    const closing = [...this.all].map((s) => s.close().catch(() => undefined));
    this.all.clear();
    this.pool.drain().catch(onDrainFailure);
    await Promise.all(closing);
    await this.pool.clear().catch(() => undefined);
  }

  /** Upstream sessions open now (borrowed or idle). */
  get size(): number {
    return this.pool.size;
  }
}
