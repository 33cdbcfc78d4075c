import { BREAKER_GAUGE_VALUE, type Gauge, type Sample } from '../telemetry/gauge-source';
import type { HealthIndicator } from '../telemetry/health-source';
import type { BreakerPosition, StatsPart } from '../telemetry/stats-source';
import type { ClientTransport } from '../core/transport-kind';
import { CLIENT_TRANSPORTS, type ClientTransportGuard } from './client-transport-guard';
import type { SessionRegistry } from './session-registry';

/**
 * What the session layer tells /metrics about itself: live connections and sessions per client
 * transport, the transports' breakers and the bytes held by outboxes. SessionService declares
 * them (GAUGE_SOURCE); they are read at each scrape.
 */
export function sessionGauges(sessions: SessionRegistry, transports: ClientTransportGuard): readonly Gauge[] {
  const perTransport = (read: (t: ClientTransport) => number) => (out: Sample[]) => {
    for (const t of CLIENT_TRANSPORTS) out.push({ labels: { transport: t }, value: read(t) });
  };
  return [
    {
      name: 'mcp_gateway_connections',
      help: 'Live client connections by transport (WebSocket connections, open SSE streams, Streamable HTTP sessions)',
      type: 'gauge',
      read: perTransport((t) => transports.liveCount(t)),
    },
    {
      name: 'mcp_gateway_sessions',
      help: 'Live sessions by the client transport they are on now',
      type: 'gauge',
      read: (out) => {
        const n: Record<ClientTransport, number> = { streamable: 0, sse: 0, ws: 0 };
        for (const s of sessions.all()) if (!s.closed) n[s.transport]++;
        perTransport((t) => n[t])(out);
      },
    },
    {
      name: 'mcp_gateway_transport_breaker_state',
      help: 'Circuit breaker of each client transport: 0 closed, 1 half-open, 2 open',
      type: 'gauge',
      read: perTransport((t) => BREAKER_GAUGE_VALUE[transports.state(t)]),
    },
    {
      name: 'mcp_gateway_outbox_bytes',
      help: 'Bytes held by every session outbox together',
      type: 'gauge',
      read: (out) => out.push({ labels: {}, value: sessions.outboxBudget.bytes }),
    },
  ];
}

/** The session layer's part of each stats sample (dashboard, alerts, S4). */
export function sessionStats(sessions: SessionRegistry, transports: ClientTransportGuard): StatsPart {
  const connections: Record<ClientTransport, number> = { streamable: 0, sse: 0, ws: 0 };
  const counts: Record<ClientTransport, number> = { streamable: 0, sse: 0, ws: 0 };
  const transportBreakers: Record<ClientTransport, BreakerPosition> = {
    streamable: 'closed',
    sse: 'closed',
    ws: 'closed',
  };
  for (const s of sessions.all()) counts[s.transport]++;
  for (const t of CLIENT_TRANSPORTS) {
    connections[t] = transports.liveCount(t);
    transportBreakers[t] = transports.state(t);
  }
  return { connections, sessions: counts, transportBreakers };
}

/** /health's session count (always up: it reports, it does not judge). */
export function sessionHealthIndicators(sessions: SessionRegistry): readonly HealthIndicator[] {
  return [
    { name: 'sessions', probe: 'health', check: () => ({ up: true, details: { active: sessions.size } }) },
  ];
}
