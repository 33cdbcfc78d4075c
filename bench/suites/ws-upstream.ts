/**
 * Suite `ws-upstream`: WebSocket clients through one gateway to the same fast upstream, once
 * over a `transport: ws` replica (its /ws listener) and once over Streamable HTTP (/mcp), at
 * `--ws-upstream-levels`; the two alternate per level so drift on the machine hits both alike.
 */
import { pairWindow, runScenario, through, type ScenarioResult } from '../scenario';
import { fastService, guarded } from '../servers';
import { medianOfRounds, versus, type RoundMedian } from '../stats';
import { defineSuite, type SuiteContext } from '../suite';

type UpstreamTransport = 'ws' | 'streamable-http';

interface WsUpstreamReport {
  note: string;
  /** Scenarios with `upstreamTransport` ('ws' | 'streamable-http'), client transport always ws; round 0 = warm-up. */
  scenarios: Array<ScenarioResult & { upstreamTransport: UpstreamTransport; round: number }>;
  /** Medians over the rounds, per level. */
  perLevel: Array<{
    sessions: number;
    wsUpstream: RoundMedian;
    httpUpstream: RoundMedian;
    /** WS upstream ÷ HTTP upstream. */
    throughputRatio: number;
    /** WS upstream − HTTP upstream. */
    p99DiffMs: number;
  }>;
}

async function runWsUpstream({ opts, failures }: SuiteContext): Promise<{ wsUpstream: WsUpstreamReport }> {
  const scenarios: WsUpstreamReport['scenarios'] = [];
  await guarded(failures, 'the ws-upstream suite', opts.logLevel, async (servers) => {
    const upstream = await servers.upstream('fast upstream (ws-upstream)');
    const gateway = await servers.gateway('gateway (ws vs http upstream)', {
      viaws: {
        mode: 'dedicated',
        replicas: [{ transport: 'ws', url: `${upstream.url.replace(/^http/, 'ws')}/ws` }],
      },
      viahttp: fastService(upstream.url).bench,
    });
    for (let round = 0; round <= opts.pairRounds; round++) {
      for (const n of opts.wsUpstreamLevels) {
        for (const [service, upstreamTransport] of [
          ['viaws', 'ws'],
          ['viahttp', 'streamable-http'],
        ] as const) {
          const r = await runScenario({
            ...pairWindow(opts),
            ...through(gateway, upstream),
            transport: 'ws',
            sessions: n,
            path: `/ws/${service}`,
            label: `→ ${upstreamTransport === 'ws' ? 'ws' : 'http'} up r${round}`,
          });
          scenarios.push({ ...r, upstreamTransport, round });
        }
      }
    }
  });
  const perLevel: WsUpstreamReport['perLevel'] = [];
  const medianOf = medianOfRounds(scenarios, (x) => x);
  for (const n of opts.wsUpstreamLevels) {
    const of = (t: UpstreamTransport) => medianOf((x) => x.upstreamTransport === t && x.sessions === n);
    const w = of('ws');
    const h = of('streamable-http');
    if (w && h) perLevel.push({ sessions: n, wsUpstream: w, httpUpstream: h, ...versus(w, h) });
  }
  return {
    wsUpstream: {
      note:
        'Client WebSocket (/ws/<service>) → gateway (dedicated) → fast upstream over a ws replica (/ws, subprotocol mcp) ' +
        'or a streamable-http replica (/mcp), same gateway and upstream processes.',
      scenarios,
      perLevel,
    },
  };
}

function printWsUpstream({ wsUpstream }: { wsUpstream: WsUpstreamReport | null }): void {
  if (!wsUpstream || wsUpstream.perLevel.length === 0) return;
  console.log(
    '\nWebSocket client through the gateway: ws upstream vs streamable-http upstream (same fast upstream):',
  );
  for (const l of wsUpstream.perLevel) {
    const side = (m: RoundMedian) =>
      `${String(m.reqPerSec).padStart(6)} req/s p50/p99 ${m.p50.toFixed(2)}/${m.p99.toFixed(2)} ms`;
    console.log(
      `  @${String(l.sessions).padEnd(4)} ws upstream ${side(l.wsUpstream)}   http upstream ${side(l.httpUpstream)}` +
        `   → ${l.throughputRatio.toFixed(2)}×`,
    );
  }
}

export const wsUpstreamSuite = defineSuite<{ wsUpstream: WsUpstreamReport | null }>({
  name: 'ws-upstream',
  empty: () => ({ wsUpstream: null }),
  heading: () => 'WebSocket client → WebSocket upstream, next to → Streamable HTTP upstream:',
  run: runWsUpstream,
  summary: printWsUpstream,
});
