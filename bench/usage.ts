/**
 * The child side of UsageRequest: every server child (gateway, upstream) answers it, so the
 * orchestrator can say per scenario which process used the CPU and how memory moved.
 */
import type { UsageReply, UsageRequest } from './ipc';

export function answerUsageRequests(): void {
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
      cpu: process.cpuUsage(),
      at: Date.now(),
    };
    process.send?.(reply);
  });
}
