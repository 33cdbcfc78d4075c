/** Once this many slots at the front are spent, a queue that never empties is compacted. */
const COMPACT_AFTER = 1024;

/**
 * Messages held until they can go on (an upstream connecting or replaying its handshake, a session
 * waiting for its upstream), first in first out, bounded in count and in bytes as undici's queues
 * are. The one queue class for every such wait (stdio, ws, Streamable HTTP and SSE upstreams, the
 * session's messages waiting for their upstream).
 *
 * `push` does not check the bounds: the holder asks `fits` first, because what a refusal says
 * (and whether an empty queue takes any one message) is the holder's to decide. The byte size of
 * an item is whatever the holder measures and passes in (the text's length, 0 when only the
 * count is bounded); the queue never serialises anything to measure it.
 */
export class HeldQueue<T> {
  private items: (T | undefined)[] = [];
  private sizes: number[] = [];
  /** Index of the oldest item: shift() moves it instead of moving every item. */
  private head = 0;
  private heldBytes = 0;

  constructor(
    /** Items the queue holds at most (fits() says no at this many). */
    readonly maxCount: number,
    /** Bytes the queue holds at most, by the sizes pushed with the items. */
    readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {}

  /** Items held. */
  get length(): number {
    return this.items.length - this.head;
  }

  /** Bytes held, by the sizes pushed with the items. */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Whether one more item of `bytes` stays within both bounds. */
  fits(bytes = 0): boolean {
    return this.length < this.maxCount && this.heldBytes + bytes <= this.maxBytes;
  }

  /** Holds `item` (of `bytes`) behind the others; the holder asked fits() first. */
  push(item: T, bytes = 0): void {
    this.items.push(item);
    this.sizes.push(bytes);
    this.heldBytes += bytes;
  }

  /** Takes the oldest item, or undefined when none is held. */
  shift(): T | undefined {
    if (this.head === this.items.length) return undefined;
    const item = this.items[this.head] as T;
    this.items[this.head] = undefined;
    this.heldBytes -= this.sizes[this.head++];
    if (this.head === this.items.length) this.clear();
    else if (this.head >= COMPACT_AFTER && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /**
   * Takes every item, oldest first. The queue is empty before the caller goes through them, so
   * whatever that holds again (a replay that starts anew, say) is held behind, not lost.
   */
  drain(): T[] {
    const items = this.head === 0 ? this.items : this.items.slice(this.head);
    this.clear();
    return items as T[];
  }

  /** Forgets every item. */
  clear(): void {
    this.items = [];
    this.sizes = [];
    this.head = 0;
    this.heldBytes = 0;
  }
}
