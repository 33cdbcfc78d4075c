import { Injectable } from '@nestjs/common';
import type { ChannelKind } from '../session/client-channel';
import { LatencyHistogram } from './latency-histogram';

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
  /**
   * Client request → its response, every method and transport together: what the p99 alert, the
   * dashboard and S4 read. Per-method histograms (bounded labels) live beside it (helper o1).
   */
  readonly requestLatency = new LatencyHistogram();
  /** Times a slow client made a session stop reading its upstream, and times it drained. */
  upstreamPauses = 0;
  upstreamResumes = 0;
  /**
   * Failures an error boundary caught (a gateway bug, never a client mistake), by entry point:
   * `mcp`, `sse`, `messages`, `ws_upgrade`, `ws_message` (see src/transports/error-boundary.ts).
   */
  readonly internalErrors = new Map<string, number>();
  /**
   * Outbox entries dropped before any acknowledgement: past the resume window after delivery,
   * or to keep the global outbox budget (entries and bytes).
   */
  readonly outboxDropped = { resume_window: 0, global_budget: 0 };
  readonly outboxDroppedBytes = { resume_window: 0, global_budget: 0 };
  /**
   * Connections, sessions and requests refused or cut by flood protection, by reason:
   * `connections`, `connections_per_ip`, `connect_rate`, `session_rate`, `sessions_per_client`,
   * `init_deadline`, `request_timeout` (slow head or body: 408), `header_too_large` (431).
   */
  readonly floodRefusals = new Map<string, number>();
  /** Transport failovers by `from->to`. */
  readonly transportSwitches = new Map<string, number>();
  /** Sessions moved to another replica, by `from->to` replica id. */
  readonly replicaFailovers = new Map<string, number>();
  /** Client requests refused over a rate limit, by transport (`admin`: the Nest controllers' RateLimitGuard). */
  readonly rateLimited = { streamable: 0, sse: 0, ws: 0, admin: 0 };
  /** Requests refused by per-client tool/resource/prompt authorization, by transport. */
  readonly authorizationDenied = { streamable: 0, sse: 0, ws: 0, admin: 0 };
  /** Entries removed from list answers (tools/list, …) by per-client authorization. */
  listEntriesFiltered = 0;

  /** Authentication and admission refusals by reason (`missing_credentials`, `token_expired`, …; helper p1). */
  readonly authRefusals = new Map<string, number>();
  /** Sessions admitted, by how the client authenticated (`none`, `api_key`, `jwt`, `oauth`, `mtls`). */
  readonly authAdmissions = new Map<string, number>();

  authRefused(reason: string): void {
    this.authRefusals.set(reason, (this.authRefusals.get(reason) ?? 0) + 1);
  }

  authAdmitted(via: string): void {
    this.authAdmissions.set(via, (this.authAdmissions.get(via) ?? 0) + 1);
  }

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

  internalError(entry: string): void {
    this.internalErrors.set(entry, (this.internalErrors.get(entry) ?? 0) + 1);
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
