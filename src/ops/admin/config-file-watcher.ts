import { watch, type FSWatcher, type Stats, stat } from 'node:fs';
import { basename, dirname } from 'node:path';

/** Coalesces the burst of events one save produces (editors write, rename, chmod). */
const DEBOUNCE_MS = 150;

/**
 * Calls `changed` once after the file at `path` changes. Watches the directory, not the file:
 * editors that save by writing a new file and renaming it over the old one would leave a watch on
 * the file pointing at the old inode. A stat poll backs the watch up (network mounts and some
 * containers deliver no fs events); both only schedule the same debounced call, and the caller
 * ignores content it has already seen.
 */
export class ConfigFileWatcher {
  private watcher: FSWatcher | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private lastStat = '';
  private readonly name: string;

  constructor(
    private readonly path: string,
    private readonly pollIntervalMs: number,
    private readonly changed: () => void,
    private readonly warn: (message: string) => void,
  ) {
    this.name = basename(path);
  }

  start(): void {
    try {
      this.watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        if (file === null || file === this.name) this.schedule();
      });
      this.watcher.on('error', (err) => {
        this.warn(`watching ${this.path} failed (${err.message}); the stat poll goes on`);
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (err) {
      this.warn(`cannot watch ${this.path} (${(err as Error).message}); relying on the stat poll`);
    }
    if (this.pollIntervalMs > 0) {
      stat(this.path, (err, s) => (this.lastStat = signature(err, s)));
      this.pollTimer = setInterval(() => this.poll(), this.pollIntervalMs);
      this.pollTimer.unref();
    }
  }

  stop(): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.pollTimer = this.debounceTimer = undefined;
  }

  private poll(): void {
    stat(this.path, (err, s) => {
      const sig = signature(err, s);
      if (sig === this.lastStat) return;
      this.lastStat = sig;
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.debounceTimer) {
      this.debounceTimer.refresh();
      return;
    }
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      this.changed();
    }, DEBOUNCE_MS);
    this.debounceTimer.unref();
  }
}

function signature(err: NodeJS.ErrnoException | null, s: Stats | undefined): string {
  return err || !s ? `missing:${err?.code ?? ''}` : `${s.ino}:${s.size}:${s.mtimeMs}`;
}
