/**
 * A session's bounded log of server→client messages.
 *
 * Every message gets the next sequence number of the session. Entries stay until the
 * client acknowledges them (a resume position says "I have everything up to N"), the
 * count/byte bound pushes the oldest out, or — once written to a live channel — their
 * resume window has passed (SDK clients never acknowledge: without the window every busy
 * session would sit at its bound). Storage is allocated on first append, so an idle
 * session that never received anything holds no array at all.
 */
export interface OutboxEntry {
  readonly seq: number;
  /** Streamable HTTP stream the message belongs to (0 = the standalone GET stream). */
  readonly stream: number;
  readonly raw: string;
  readonly bytes: number;
  /** When it was last written to a live channel (0: not yet — it waits for one). */
  deliveredAt: number;
}

/**
 * The byte budget all outboxes of the process share. Outboxes keep `bytes` and
 * `deliveredBytes` current; whoever owns the sessions sets `enforce` (drop retained,
 * already delivered entries) and it is called when an append takes `bytes` past `nextCheck`.
 */
export class OutboxBudget {
  /** Bytes held by every outbox. */
  bytes = 0;
  /** The part of `bytes` that was already written to a live channel (kept only for resume). */
  deliveredBytes = 0;
  /** Above this an append calls `enforce`; raised while only undelivered entries are left to drop. */
  nextCheck: number;
  enforce: (() => void) | undefined = undefined;

  constructor(readonly maxBytes: number) {
    this.nextCheck = maxBytes;
  }
}

export interface OutboxLimits {
  maxMessages: number;
  maxBytes: number;
  /** How long an entry written to a live channel is kept for a resume (0: until acked or evicted). */
  resumeWindowMs?: number;
  /** The process-wide budget this outbox counts against. */
  budget?: OutboxBudget;
}

export class ResumeUnavailableError extends Error {
  constructor(
    readonly requested: number,
    readonly oldestAvailable: number,
    message = `cannot resume after event ${requested}: the session only retains events from ${oldestAvailable} on (older ones were dropped at the outbox bound or after the resume window)`,
  ) {
    super(message);
  }
}

/** A resume position the session never reached: refused, or it would hide later losses. */
function beyondEnd(requested: number, last: number): ResumeUnavailableError {
  return new ResumeUnavailableError(
    requested,
    last + 1,
    `cannot resume after event ${requested}: the session has only sent events up to ${last}`,
  );
}

export class Outbox {
  private entries: OutboxEntry[] | undefined = undefined;
  private head = 0;
  private bytes = 0;
  private lastSeq = 0;
  /** Highest seq known to be dropped without acknowledgement; resuming at or before it loses data. */
  private lostThrough = 0;
  /** The same for the standalone stream (0), the only one of WebSocket and SSE sessions. */
  private lostStandalone = 0;
  /**
   * The same per POST stream (Streamable HTTP resumes one stream: only its own losses matter).
   * Bounded: past MAX_LOST_STREAMS the oldest records go and `lostStreamFloor` rises, so a
   * resume of such an old stream fails rather than skipping what it lost.
   */
  private lostByStream: Map<number, number> | undefined = undefined;
  private lostStreamFloor = 0;
  private ackedThrough = 0;
  /** Bytes of retained entries that were written to a live channel. */
  private delivered = 0;
  /** No retained delivered entry is older than this (a lower bound; 0: none delivered). */
  private earliestDelivery = 0;

  constructor(private readonly limits: OutboxLimits) {}

  get size(): number {
    return this.entries ? this.entries.length - this.head : 0;
  }

  get byteSize(): number {
    return this.bytes;
  }

  /** Bytes kept only so a client can resume (already written to a live channel). */
  get deliveredBytes(): number {
    return this.delivered;
  }

  get seq(): number {
    return this.lastSeq;
  }

  append(stream: number, raw: string): OutboxEntry {
    const entry: OutboxEntry = {
      seq: ++this.lastSeq,
      stream,
      raw,
      bytes: Buffer.byteLength(raw),
      deliveredAt: 0,
    };
    if (!this.entries) this.entries = [];
    this.entries.push(entry);
    this.bytes += entry.bytes;
    const budget = this.limits.budget;
    if (budget) budget.bytes += entry.bytes;
    while (this.size > 1 && (this.size > this.limits.maxMessages || this.bytes > this.limits.maxBytes)) {
      this.noteDropped(this.shift());
    }
    if (budget && budget.bytes > budget.nextCheck) budget.enforce?.();
    return entry;
  }

  /** `entry` was written to a live channel at `now`: from then on it is kept only for the resume window. */
  markDelivered(entry: OutboxEntry, now: number): void {
    if (entry.deliveredAt === 0) {
      this.delivered += entry.bytes;
      if (this.limits.budget) this.limits.budget.deliveredBytes += entry.bytes;
    }
    entry.deliveredAt = now;
    if (this.earliestDelivery === 0 || now < this.earliestDelivery) this.earliestDelivery = now;
  }

  /**
   * Drops every entry up to and including `seq` (the client confirmed it has them). A position
   * that is not one the session issued (negative, fractional, beyond the last seq) is ignored:
   * acknowledging the future would make later losses look acknowledged.
   */
  ack(seq: number, stream?: number): void {
    if (!Number.isSafeInteger(seq) || seq < 0 || seq > this.lastSeq) return;
    if (stream === undefined) this.ackedThrough = Math.max(this.ackedThrough, seq);
    while (this.size > 0) {
      const first = this.entries![this.head];
      if (first.seq > seq) break;
      if (stream !== undefined && first.stream !== stream) break;
      this.shift();
    }
  }

  /**
   * Entries after `seq`, optionally only those of one stream, in order.
   * Throws ResumeUnavailableError when entries the caller has not seen were already dropped,
   * or when `seq` is not a position the session reached (the client cannot have seen it).
   */
  since(seq: number, stream?: number): OutboxEntry[] {
    if (!Number.isSafeInteger(seq) || seq < 0 || seq > this.lastSeq) throw beyondEnd(seq, this.lastSeq);
    const lost = this.lostFor(stream);
    if (seq < lost) throw new ResumeUnavailableError(seq, lost + 1);
    return this.retainedSince(seq, stream);
  }

  /** Like since(), but without the loss check: for a client that starts listening now, not resuming. */
  retainedSince(seq: number, stream?: number): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    if (!this.entries) return out;
    for (let i = this.head; i < this.entries.length; i++) {
      const e = this.entries[i];
      if (e.seq > seq && (stream === undefined || e.stream === stream)) out.push(e);
    }
    return out;
  }

  /** The retained entry with this seq, if any (used to map an event id back to its stream). */
  find(seq: number): OutboxEntry | undefined {
    if (!this.entries) return undefined;
    for (let i = this.head; i < this.entries.length; i++) {
      if (this.entries[i].seq === seq) return this.entries[i];
    }
    return undefined;
  }

  /**
   * Drops delivered entries whose resume window has passed. Cheap when nothing is due (one
   * comparison); a resume from before a dropped entry then fails. Returns the entries dropped.
   */
  expireDelivered(now: number): number {
    const windowMs = this.limits.resumeWindowMs ?? 0;
    if (windowMs <= 0 || this.earliestDelivery === 0 || now - this.earliestDelivery < windowMs) return 0;
    return this.dropDelivered((e) => now - e.deliveredAt >= windowMs, Infinity);
  }

  /** Drops delivered entries, oldest first, until `bytes` are freed (the global budget). Returns bytes freed. */
  shedDelivered(bytes: number): number {
    const before = this.bytes;
    this.dropDelivered(isDelivered, bytes);
    return before - this.bytes;
  }

  private lostFor(stream: number | undefined): number {
    if (stream === undefined) return this.lostThrough;
    if (stream === STANDALONE) return this.lostStandalone;
    const lost = this.lostByStream?.get(stream);
    if (lost !== undefined) return lost;
    // Its record was let go: all that is known is that it lost something, so nothing is safe.
    return stream <= this.lostStreamFloor ? Number.MAX_SAFE_INTEGER - 1 : 0;
  }

  clear(): void {
    const budget = this.limits.budget;
    if (budget) {
      budget.bytes -= this.bytes;
      budget.deliveredBytes -= this.delivered;
    }
    this.entries = undefined;
    this.head = 0;
    this.bytes = 0;
    this.delivered = 0;
    this.earliestDelivery = 0;
    this.lostByStream = undefined;
  }

  /** Removes entries that match (never undelivered ones), at most about `maxBytes`; returns how many. */
  private dropDelivered(match: (e: OutboxEntry) => boolean, maxBytes: number): number {
    if (!this.entries) return 0;
    let freed = 0;
    let dropped = 0;
    // The usual case: the oldest entries are the ones due, so shifting the head is enough.
    while (this.size > 0 && freed < maxBytes) {
      const first = this.entries![this.head];
      if (first.deliveredAt === 0 || !match(first)) break;
      freed += first.bytes;
      dropped++;
      this.noteDropped(this.shift());
    }
    if (this.entries && freed < maxBytes && this.delivered > 0) {
      // An undelivered entry (e.g. for a standalone stream nobody listens to) blocks the head:
      // compact around it.
      const kept: OutboxEntry[] = [];
      for (let i = this.head; i < this.entries.length; i++) {
        const e = this.entries[i];
        if (freed < maxBytes && e.deliveredAt !== 0 && match(e)) {
          freed += e.bytes;
          dropped++;
          this.forget(e);
          this.noteDropped(e);
        } else {
          kept.push(e);
        }
      }
      this.entries = kept.length > 0 ? kept : undefined;
      this.head = 0;
    }
    let earliest = 0;
    if (this.entries) {
      for (let i = this.head; i < this.entries.length; i++) {
        const at = this.entries[i].deliveredAt;
        if (at !== 0 && (earliest === 0 || at < earliest)) earliest = at;
      }
    }
    this.earliestDelivery = earliest;
    return dropped;
  }

  /** An entry left without acknowledgement: resuming from before it must fail, never skip it. */
  private noteDropped(dropped: OutboxEntry): void {
    if (dropped.seq <= this.ackedThrough) return;
    if (dropped.seq > this.lostThrough) this.lostThrough = dropped.seq;
    if (dropped.stream === STANDALONE) {
      if (dropped.seq > this.lostStandalone) this.lostStandalone = dropped.seq;
      return;
    }
    const byStream = (this.lostByStream ??= new Map());
    // Re-inserted so the Map's order is that of the latest loss: a stream that keeps losing
    // (a long one with a slow reader) is never the one whose record goes.
    byStream.delete(dropped.stream);
    byStream.set(dropped.stream, dropped.seq);
    if (byStream.size > MAX_LOST_STREAMS) {
      const oldest = byStream.keys().next().value as number;
      byStream.delete(oldest);
      if (oldest > this.lostStreamFloor) this.lostStreamFloor = oldest;
    }
  }

  /** Takes an entry's bytes out of the counters (it leaves the outbox). */
  private forget(entry: OutboxEntry): void {
    this.bytes -= entry.bytes;
    const budget = this.limits.budget;
    if (budget) budget.bytes -= entry.bytes;
    if (entry.deliveredAt !== 0) {
      this.delivered -= entry.bytes;
      if (budget) budget.deliveredBytes -= entry.bytes;
    }
  }

  private shift(): OutboxEntry {
    const entry = this.entries![this.head++];
    this.forget(entry);
    // Compact occasionally so the array does not grow with the session's lifetime.
    if (this.head > 64 && this.head * 2 > this.entries!.length) {
      this.entries = this.entries!.slice(this.head);
      this.head = 0;
    }
    if (this.size === 0) {
      this.entries = undefined;
      this.head = 0;
      this.earliestDelivery = 0;
    }
    return entry;
  }
}

/** The standalone stream's number (see Session): WebSocket and SSE sessions only use this one. */
const STANDALONE = 0;

/**
 * POST streams whose losses are remembered one by one; past it the stream whose last loss is
 * oldest is only remembered through the floor (a resume of a stream at or below it fails).
 */
const MAX_LOST_STREAMS = 256;

function isDelivered(e: OutboxEntry): boolean {
  return e.deliveredAt !== 0;
}
