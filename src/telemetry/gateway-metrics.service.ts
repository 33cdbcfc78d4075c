import { Injectable } from '@nestjs/common';
import type { ClientTransport } from '../core/transport-kind';
import { LatencyHistogram } from './latency-histogram';
import { MCP_METHODS, METHOD_TOOLS_CALL } from './mcp-methods';

/** Tool names a per-tool histogram is kept for unless configured otherwise (the rest count as "other"). */
export const DEFAULT_MAX_TOOL_LABELS = 100;
/** Replicas an upstream-latency histogram is kept for (replicas come from configuration; a bound all the same). */
const MAX_REPLICA_LABELS = 1000;
/** The label of what is past a bound, or not declared. */
export const OTHER_LABEL = 'other';

/**
 * Counters the hot path bumps. Plain numbers (no label lookups per message); the
 * Prometheus collectors read them at scrape time.
 */
@Injectable()
export class GatewayMetrics {
  readonly messagesIn: Record<ClientTransport, number> = { streamable: 0, sse: 0, ws: 0 };
  readonly messagesOut: Record<ClientTransport, number> = { streamable: 0, sse: 0, ws: 0 };
  /** UTF-8 bytes of the JSON-RPC messages (not the transport's framing), as a client sent them. */
  readonly bytesIn: Record<ClientTransport, number> = { streamable: 0, sse: 0, ws: 0 };
  /** UTF-8 bytes of the upstream messages delivered to clients. */
  readonly bytesOut: Record<ClientTransport, number> = { streamable: 0, sse: 0, ws: 0 };
  readonly sessionsClosed: Record<ClientTransport, number> = { streamable: 0, sse: 0, ws: 0 };
  readonly errors = new Map<string, number>();
  /**
   * Client request → its response, every method and transport together: what the p99 alert, the
   * dashboard and S4 read. Per-method histograms (bounded labels) live beside it.
   */
  readonly requestLatency = new LatencyHistogram();
  /** The same observations by MCP method, indexed like MCP_METHODS (the session keeps the index). */
  readonly methodLatency: readonly LatencyHistogram[] = MCP_METHODS.map(() => new LatencyHistogram());
  /**
   * tools/call by tool name: only names an upstream declared in a tools/list answer get their own
   * histogram, at most `maxToolLabels` of them; anything else is `other`.
   */
  readonly toolLatency = new Map<string, LatencyHistogram>();
  readonly toolLatencyOther = new LatencyHistogram();
  maxToolLabels = DEFAULT_MAX_TOOL_LABELS;
  /** Request sent to a replica → its answer, by replica id (ports hold their replica's histogram). */
  readonly upstreamLatency = new Map<string, LatencyHistogram>();
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

  /** Authentication and admission refusals by reason (`missing_credentials`, `token_expired`, …). */
  readonly authRefusals = new Map<string, number>();
  /** Sessions admitted, by how the client authenticated (`none`, `api_key`, `jwt`, `oauth`, `mtls`). */
  readonly authAdmissions = new Map<string, number>();

  authRefused(reason: string): void {
    this.authRefusals.set(reason, (this.authRefusals.get(reason) ?? 0) + 1);
  }

  authAdmitted(via: string): void {
    this.authAdmissions.set(via, (this.authAdmissions.get(via) ?? 0) + 1);
  }

  messageIn(kind: ClientTransport, bytes = 0): void {
    this.messagesIn[kind]++;
    this.bytesIn[kind] += bytes;
  }

  /** A client request got its response after `ms`; `method` indexes MCP_METHODS. */
  requestCompleted(method: number, tool: string | undefined, ms: number): void {
    this.requestLatency.observe(ms);
    this.methodLatency[method].observe(ms);
    if (method === METHOD_TOOLS_CALL) {
      const h = tool === undefined ? undefined : this.toolLatency.get(tool);
      (h ?? this.toolLatencyOther).observe(ms);
    }
  }

  /** Tool names from a tools/list result: each gets its own tools/call histogram while there is room. */
  learnTools(result: unknown): void {
    const tools = (result as { tools?: unknown } | undefined)?.tools;
    if (!Array.isArray(tools)) return;
    for (const tool of tools) {
      const name = (tool as { name?: unknown } | null)?.name;
      if (typeof name !== 'string' || name.length === 0 || name.length > 128) continue;
      if (this.toolLatency.has(name)) continue;
      if (this.toolLatency.size >= this.maxToolLabels) return;
      this.toolLatency.set(name, new LatencyHistogram());
    }
  }

  /** The upstream-latency histogram of a replica (looked up when a port moves to it, not per message). */
  upstreamLatencyOf(replica: string): LatencyHistogram {
    let h = this.upstreamLatency.get(replica);
    if (h === undefined) {
      if (this.upstreamLatency.size >= MAX_REPLICA_LABELS) {
        h = this.upstreamLatency.get(OTHER_LABEL);
        if (h === undefined) this.upstreamLatency.set(OTHER_LABEL, (h = new LatencyHistogram()));
        return h;
      }
      this.upstreamLatency.set(replica, (h = new LatencyHistogram()));
    }
    return h;
  }

  messageOut(kind: ClientTransport, bytes: number): void {
    this.messagesOut[kind]++;
    this.bytesOut[kind] += bytes;
  }

  sessionClosed(kind: ClientTransport): void {
    this.sessionsClosed[kind]++;
  }

  transportSwitch(from: ClientTransport, to: ClientTransport): void {
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
