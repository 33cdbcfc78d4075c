/** Anything that can be pinged when it has been quiet for too long. */
export interface KeepAliveTarget {
  lastWrite: number;
  keepAlive(): void;
}

/**
 * One interval for all open streams (not one timer per connection): every tick, streams
 * that have been silent for `intervalMs` get a keep-alive.
 */
export class KeepAliveTicker {
  private readonly targets = new Set<KeepAliveTarget>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs: number) {}

  add(target: KeepAliveTarget): void {
    // Tracked even with keep-alives off: `size` is the count of open streams (connection caps).
    this.targets.add(target);
    if (this.intervalMs > 0 && !this.timer) {
      this.timer = setInterval(() => this.tick(), Math.max(250, Math.floor(this.intervalMs / 2)));
      this.timer.unref();
    }
  }

  delete(target: KeepAliveTarget): void {
    this.targets.delete(target);
  }

  get size(): number {
    return this.targets.size;
  }

  tick(now = Date.now()): void {
    for (const t of this.targets) if (now - t.lastWrite >= this.intervalMs) t.keepAlive();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.targets.clear();
  }
}
