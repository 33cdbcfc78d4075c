import { Injectable } from '@nestjs/common';
import type { ChannelKind } from '../session/client-channel';

/**
 * Counters the hot path bumps. Plain numbers (no label lookups per message); the
 * Prometheus collectors read them at scrape time.
 */
@Injectable()
export class GatewayMetrics {
  readonly messagesIn: Record<ChannelKind, number> = { streamable: 0, sse: 0, ws: 0 };
  readonly messagesOut: Record<ChannelKind, number> = { streamable: 0, sse: 0, ws: 0 };
  readonly bytesOut: Record<ChannelKind, number> = { streamable: 0, sse: 0, ws: 0 };
  readonly sessionsClosed: Record<ChannelKind, number> = { streamable: 0, sse: 0, ws: 0 };
  readonly errors = new Map<string, number>();
  /** Times a slow client made a session stop reading its upstream, and times it drained. */
  upstreamPauses = 0;
  upstreamResumes = 0;
  /** Transport failovers by `from->to`. */
  readonly transportSwitches = new Map<string, number>();
  /** Sessions moved to another replica, by `from->to` replica id. */
  readonly replicaFailovers = new Map<string, number>();

  messageIn(kind: ChannelKind): void {
    this.messagesIn[kind]++;
  }

  messageOut(kind: ChannelKind, bytes: number): void {
    this.messagesOut[kind]++;
    this.bytesOut[kind] += bytes;
  }

  sessionClosed(kind: ChannelKind): void {
    this.sessionsClosed[kind]++;
  }

  transportSwitch(from: ChannelKind, to: ChannelKind): void {
    const key = `${from}->${to}`;
    this.transportSwitches.set(key, (this.transportSwitches.get(key) ?? 0) + 1);
  }

  replicaFailover(from: string, to: string): void {
    const key = `${from}->${to}`;
    this.replicaFailovers.set(key, (this.replicaFailovers.get(key) ?? 0) + 1);
  }

  /** Counts a refused or failed client interaction by kind (parse_error, session_not_found, …). */
  error(kind: string): void {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1);
  }
}
