/**
 * Which server→client sequence numbers the client has delivered, and in what order to
 * deliver the ones that arrive.
 *
 * The gateway numbers every message of a session 1, 2, 3 … across all of the session's
 * streams and transports. After a failover it replays from the position the client names,
 * so a client sees some numbers twice; and on Streamable HTTP a session's messages travel
 * on several HTTP responses at once (the GET stream, one per POST), which can reach the
 * client slightly out of order. This module keeps both straight:
 *
 * - {@link SeqSet}: the set of delivered numbers as a contiguous watermark (everything
 *   ≤ `through`) plus the few numbers delivered above it. The watermark is the resume
 *   position: "send me everything after it" can only repeat messages, never skip one.
 * - {@link SequencedInbox}: delivers each number at most once, in ascending order; a
 *   message that arrives ahead of a gap is held for a short window so the gap can fill,
 *   then delivered anyway (a number may legitimately never arrive on this connection, e.g.
 *   an answer the gateway sent as a plain JSON body without an event id).
 */
export class SeqSet {
  private through = 0;
  private readonly above = new Set<number>();
  private top = 0;

  /**
   * @param maxAbove Bound on numbers remembered above a gap. Past it the oldest gap is
   *   given up (treated as never coming) so memory stays bounded on a session that has a
   *   permanent hole, e.g. a message that had no event id.
   */
  constructor(private readonly maxAbove = 10_000) {}

  /** Every number ≤ this has been delivered: the position to resume from. */
  get watermark(): number {
    return this.through;
  }

  /** The highest number delivered. */
  get highest(): number {
    return this.top;
  }

  /** Numbers delivered above the watermark (gaps below them are still open). */
  get pendingAbove(): number {
    return this.above.size;
  }

  has(seq: number): boolean {
    return seq <= this.through || this.above.has(seq);
  }

  /** Records `seq`; false when it was already there. */
  add(seq: number): boolean {
    if (this.has(seq)) return false;
    if (seq > this.top) this.top = seq;
    if (seq === this.through + 1) {
      this.through = seq;
      this.compact();
    } else {
      this.above.add(seq);
      if (this.above.size > this.maxAbove) this.giveUpOldestGap();
    }
    return true;
  }

  /** Moves the watermark up to `seq` (a position the client is known to hold, e.g. a resume start). */
  advanceTo(seq: number): void {
    if (seq <= this.through) return;
    this.through = seq;
    if (seq > this.top) this.top = seq;
    for (const s of this.above) if (s <= seq) this.above.delete(s);
    this.compact();
  }

  private compact(): void {
    while (this.above.size > 0 && this.above.delete(this.through + 1)) this.through++;
  }

  private giveUpOldestGap(): void {
    let lowest = Infinity;
    for (const s of this.above) if (s < lowest) lowest = s;
    this.advanceTo(lowest);
  }
}

export interface SequencedInboxOptions {
  /** How long a message that arrived ahead of a gap waits for the gap to fill (ms). */
  holdMs: number;
  /** Bound on held messages; past it they are delivered without waiting. */
  maxHeld?: number;
}

export type InboxVerdict = 'delivered' | 'held' | 'duplicate';

export class SequencedInbox<T> {
  readonly seen = new SeqSet();
  /** Highest number delivered in order (or skipped past after a hold timed out). */
  private cursor = 0;
  private readonly held = new Map<number, T>();
  private timer: ReturnType<typeof setTimeout> | undefined = undefined;
  private readonly maxHeld: number;

  constructor(
    private readonly deliver: (item: T, seq: number | undefined) => void,
    private readonly options: SequencedInboxOptions,
  ) {
    this.maxHeld = options.maxHeld ?? 10_000;
  }

  /** The resume position: every number up to it has been delivered. */
  get watermark(): number {
    return this.seen.watermark;
  }

  get heldCount(): number {
    return this.held.size;
  }

  /** One message; `seq` undefined for a message that carried no number (delivered at once). */
  push(seq: number | undefined, item: T): InboxVerdict {
    if (seq === undefined) {
      this.deliver(item, undefined);
      return 'delivered';
    }
    if (this.seen.has(seq) || this.held.has(seq)) return 'duplicate';
    if (seq > this.cursor + 1) {
      this.held.set(seq, item);
      if (this.held.size > this.maxHeld) this.release();
      else this.arm();
      return 'held';
    }
    // The next in order, or a late arrival below the cursor (a gap that filled after its
    // hold expired): either way it has not been delivered, so it is delivered now.
    this.emit(seq, item);
    this.drainHeld();
    return 'delivered';
  }

  /** Marks `seq` as delivered without a message (its content arrived without a number). */
  markDelivered(seq: number): void {
    this.seen.add(seq);
    if (seq === this.cursor + 1) {
      this.cursor = seq;
      this.drainHeld();
    }
  }

  /** Delivers everything held, in order, without waiting for gaps (hold expired, or closing). */
  release(): void {
    this.disarm();
    if (this.held.size === 0) return;
    const seqs = [...this.held.keys()].sort((a, b) => a - b);
    for (const seq of seqs) {
      const item = this.held.get(seq) as T;
      this.held.delete(seq);
      this.emit(seq, item);
    }
  }

  /** Drops held messages and stops the timer (the transport is closing for good). */
  dispose(): void {
    this.disarm();
    this.held.clear();
  }

  private emit(seq: number, item: T): void {
    this.seen.add(seq);
    if (seq > this.cursor) this.cursor = seq;
    this.deliver(item, seq);
  }

  private drainHeld(): void {
    while (this.held.size > 0) {
      const next = this.held.get(this.cursor + 1);
      if (next === undefined) break;
      this.held.delete(this.cursor + 1);
      this.emit(this.cursor + 1, next);
    }
    if (this.held.size === 0) this.disarm();
  }

  private arm(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.release();
    }, this.options.holdMs);
    // A held message must not keep a process alive on its own.
    (this.timer as { unref?: () => void }).unref?.();
  }

  private disarm(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
