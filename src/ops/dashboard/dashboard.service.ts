import type { ServerResponse } from 'node:http';
import { Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import { AlertsService } from '../alerts/alerts.service';
import { StatsSampler } from '../stats/stats-sampler.service';
import { dashboardFrame } from './dashboard-frame';

/** Frames replayed to a page that connects, so its charts start with the last two minutes. */
const REPLAYED_FRAMES = 120;
/** Frames waiting in a stream's buffer past which its page counts as gone (the replay fits easily). */
const MAX_QUEUED_BYTES = 1 << 20;

/**
 * Turns each stats sample into one JSON frame, serialised once and written to every open
 * /dashboard/stream. Nothing is computed while no sample is due.
 */
@Injectable()
export class DashboardService implements BeforeApplicationShutdown {
  private readonly streams = new Set<ServerResponse>();
  private readonly frames: string[] = [];

  constructor(sampler: StatsSampler, alerts: AlertsService) {
    // Registered after AlertsService's listener (a constructor dependency): frames show this sample's alerts.
    sampler.onSample((sample, history) => {
      const line = `data: ${JSON.stringify(dashboardFrame(sample, history, alerts.active(), alerts.recent()))}\n\n`;
      this.frames.push(line);
      if (this.frames.length > REPLAYED_FRAMES) this.frames.shift();
      for (const res of this.streams) {
        // A page that stopped reading is let go once a bound of frames waits for it: skipping frames
        // kept every stalled stream (and its megabyte) forever. A live page reconnects (retry: 2000)
        // and is sent the recent frames again.
        if (res.writableLength > MAX_QUEUED_BYTES) {
          this.streams.delete(res);
          res.destroy();
          continue;
        }
        res.write(line);
      }
    });
  }

  get latest(): string | undefined {
    return this.frames[this.frames.length - 1];
  }

  /** Holds `res` open as an SSE stream of frames, starting with the recent ones. */
  attach(res: ServerResponse): void {
    // A stream ends only at shutdown or when the page goes: its connection is not kept for reuse.
    res.shouldKeepAlive = false;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 2000\n\n${this.frames.join('')}`);
    this.streams.add(res);
    res.on('close', () => this.streams.delete(res));
  }

  get openStreams(): number {
    return this.streams.size;
  }

  beforeApplicationShutdown(): void {
    for (const res of this.streams) res.end();
    this.streams.clear();
  }
}
