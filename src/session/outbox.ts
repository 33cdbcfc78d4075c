/**
 * A session's bounded log of server→client messages.
 *
 * Every message gets the next sequence number of the session. Entries stay until the
 * client acknowledges them (a resume position says "I have everything up to N") or the
 * count/byte bound pushes the oldest out. Storage is allocated on first append, so an
 * idle session that never received anything holds no array at all.
 */
export interface OutboxEntry {
  readonly seq: number;
  /** Streamable HTTP stream the message belongs to (0 = the standalone GET stream). */
  readonly stream: number;
  readonly raw: string;
  readonly bytes: number;
}

export interface OutboxLimits {
  maxMessages: number;
  maxBytes: number;
}

export class ResumeUnavailableError extends Error {
  constructor(
    readonly requested: number,
    readonly oldestAvailable: number,
  ) {
    super(
      `cannot resume after event ${requested}: the session only retains events from ${oldestAvailable} on (older ones were dropped at the outbox bound)`,
    );
  }
}

export class Outbox {
  private entries: OutboxEntry[] | undefined = undefined;
  private head = 0;
  private bytes = 0;
  private lastSeq = 0;
  /** Highest seq known to be dropped without acknowledgement; resuming at or before it loses data. */
  private lostThrough = 0;
  /** The same per stream (Streamable HTTP resumes one stream: only its own losses matter). */
  private lostByStream: Map<number, number> | undefined = undefined;
  private ackedThrough = 0;

  constructor(private readonly limits: OutboxLimits) {}

  get size(): number {
    return this.entries ? this.entries.length - this.head : 0;
  }

  get byteSize(): number {
    return this.bytes;
  }

  get seq(): number {
    return this.lastSeq;
  }

  append(stream: number, raw: string): OutboxEntry {
    const entry: OutboxEntry = { seq: ++this.lastSeq, stream, raw, bytes: Buffer.byteLength(raw) };
    if (!this.entries) this.entries = [];
    this.entries.push(entry);
    this.bytes += entry.bytes;
    while (this.size > 1 && (this.size > this.limits.maxMessages || this.bytes > this.limits.maxBytes)) {
      const dropped = this.shift();
      if (dropped.seq > this.ackedThrough) {
        this.lostThrough = dropped.seq;
        (this.lostByStream ??= new Map()).set(dropped.stream, dropped.seq);
      }
    }
    return entry;
  }

  /** Drops every entry up to and including `seq` (the client confirmed it has them). */
  ack(seq: number, stream?: number): void {
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
   * Throws ResumeUnavailableError when entries the caller has not seen were already dropped.
   */
  since(seq: number, stream?: number): OutboxEntry[] {
    const lost = stream === undefined ? this.lostThrough : (this.lostByStream?.get(stream) ?? 0);
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

  clear(): void {
    this.entries = undefined;
    this.head = 0;
    this.bytes = 0;
    this.lostByStream = undefined;
  }

  private shift(): OutboxEntry {
    const entry = this.entries![this.head++];
    this.bytes -= entry.bytes;
    // Compact occasionally so the array does not grow with the session's lifetime.
    if (this.head > 64 && this.head * 2 > this.entries!.length) {
      this.entries = this.entries!.slice(this.head);
      this.head = 0;
    }
    if (this.size === 0) {
      this.entries = undefined;
      this.head = 0;
    }
    return entry;
  }
}
