/**
 * The child side of UsageRequest: every server child (gateway, upstream) answers it, so the
 * orchestrator can say per scenario which process used the CPU and how memory moved.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { UsageReply, UsageRequest } from './ipc';

export function answerUsageRequests(counts: () => Record<string, number> = () => ({})): void {
  process.on('message', (msg: UsageRequest) => {
    if (msg?.type !== 'usage') return;
    const gc = (globalThis as { gc?: () => void }).gc;
    if (msg.gc && gc) {
      // Two passes: the first may only promote what a second one frees.
      gc();
      gc();
    }
    const m = process.memoryUsage();
    const reply: UsageReply = {
      type: 'usage',
      seq: msg.seq,
      memory: {
        rss: m.rss,
        heapUsed: m.heapUsed,
        heapTotal: m.heapTotal,
        external: m.external,
        arrayBuffers: m.arrayBuffers,
      },
      counts: safeCounts(counts),
      cpu: process.cpuUsage(),
      at: Date.now(),
    };
    process.send?.(reply);
  });
}

function safeCounts(counts: () => Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    Object.assign(out, counts());
  } catch {
    // A count the process cannot give is left out, not guessed.
  }
  const fds = openFds();
  if (fds !== undefined) out.openFds = fds;
  const limit = fdLimit();
  if (limit !== undefined) out.fdLimit = limit;
  return out;
}

/** Open file descriptors (sockets included), from /proc on Linux. */
function openFds(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return undefined;
  }
}

/** The soft RLIMIT_NOFILE this process runs with, to show the bench's ulimit took effect. */
function fdLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
