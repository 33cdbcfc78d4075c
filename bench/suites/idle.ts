/**
 * Suite `idle`: `--idle-connections` idle WebSocket and legacy SSE connections held against a
 * fresh gateway per transport (bench/idle-scenario.ts), against DESIGN.md §12's memory budget.
 */
import { runIdleScenario, type IdleKind, type IdleScenarioResult } from '../idle-scenario';
import { withFreshGateway } from '../servers';
import { kb, mb } from '../stats';
import { defineSuite, type SuiteContext } from '../suite';

interface IdleBudget {
  kind: IdleKind;
  connections: number;
  target: { connections: number; maxRssBytes: number; maxHeapBytes: number };
  rssBytesPerConnection: number;
  heapBytesPerSession: number;
  meets: boolean;
}

interface IdleSection {
  idle: { note: string; scenarios: IdleScenarioResult[]; budget: IdleBudget[] };
}

/** DESIGN.md §12: 10,000 per transport within these, each. */
const IDLE_BUDGET: Record<IdleKind, { maxRssBytes: number; maxHeapBytes: number }> = {
  ws: { maxRssBytes: 10 * 1024, maxHeapBytes: 1024 },
  sse: { maxRssBytes: 14 * 1024, maxHeapBytes: 1024 },
};

const IDLE_NOTE_SHORT =
  'each idle session also holds an upstream lease in dedicated mode; upstream RSS is shown separately';
const IDLE_NOTE =
  'Each idle WebSocket / SSE connection is a gateway session, and in dedicated mode every session holds an ' +
  'upstream lease: an upstream connection object in the gateway (for a Streamable HTTP upstream, a HEAD on start; ' +
  'the upstream MCP session itself is created by initialize, which these idle connections never send). ' +
  'So the gateway figures include the lease, and the upstream (the fast one) is reported separately. ' +
  'perConnection = (after − before) / open connections, both samples after a full GC. Kernel socket buffers ' +
  'are not part of RSS.';

async function runIdle({ opts, failures }: SuiteContext): Promise<IdleSection> {
  const scenarios: IdleScenarioResult[] = [];
  for (const kind of opts.idleKinds) {
    try {
      scenarios.push(
        await withFreshGateway(opts.logLevel, `idle ${kind}`, {}, (upstream, gateway) =>
          runIdleScenario({
            kind,
            connections: opts.idleConnections,
            workers: opts.idleWorkers,
            holdMs: opts.idleHoldMs,
            gateway: gateway.child,
            gatewayUrl: gateway.url,
            upstream: upstream.child,
            wsCompression: false,
            gatewayCompression: false,
            label: `idle ${kind} × ${opts.idleConnections} (${opts.idleWorkers} workers)`,
          }),
        ),
      );
    } catch (err) {
      failures.push({ what: `the idle ${kind} scenario`, error: (err as Error).message });
    }
  }
  return { idle: { note: IDLE_NOTE, scenarios, budget: idleBudget(scenarios) } };
}

function idleBudget(results: IdleScenarioResult[]): IdleBudget[] {
  return results
    .filter((r) => r.perConnection && r.established > 0)
    .map((r) => {
      const target = IDLE_BUDGET[r.kind];
      const pc = r.perConnection!;
      return {
        kind: r.kind,
        connections: r.established,
        target: { connections: 10_000, ...target },
        rssBytesPerConnection: pc.gatewayRssBytes,
        heapBytesPerSession: pc.gatewayHeapBytes,
        meets:
          r.established >= 10_000 &&
          r.errors === 0 &&
          pc.gatewayRssBytes <= target.maxRssBytes &&
          pc.gatewayHeapBytes < target.maxHeapBytes,
      };
    });
}

/** The error samples of idle scenarios (this suite's, and the compression suite's idle halves). */
export function printIdleErrors(runs: IdleScenarioResult[]): void {
  for (const r of runs.filter((x) => x.errorSamples.length > 0)) {
    console.log(`\nerrors in idle ${r.kind} × ${r.connections}${r.compression ? ' (compression on)' : ''}:`);
    for (const e of r.errorSamples) console.log(`  ${e}`);
  }
}

function printIdle({ idle }: IdleSection): void {
  if (idle.scenarios.length === 0) return;
  console.log(
    '\nidle     conns   open  err  establish   gw RSS MB before→after (afterClose)   per conn: RSS KB  heap KB' +
      '   upstream RSS MB before→after  fds  fd limit',
  );
  for (const r of idle.scenarios) {
    const g = r.gateway;
    const pc = r.perConnection;
    console.log(
      [
        r.kind.padEnd(5),
        String(r.connections).padStart(7),
        String(r.established).padStart(6),
        String(r.errors).padStart(4),
        `${String(r.establishMs ?? '-').padStart(6)} ms`,
        `   ${mb(g.before?.rss)} →${mb(g.after?.rss)} (${mb(g.afterClose?.rss).trim()})`.padEnd(36),
        pc ? kb(pc.gatewayRssBytes).padStart(8) : '       -',
        pc ? kb(pc.gatewayHeapBytes).padStart(8) : '       -',
        `   ${mb(r.upstream.before?.rss)} →${mb(r.upstream.after?.rss)}`.padEnd(28),
        String(g.counts?.openFds ?? '-').padStart(6),
        String(g.counts?.fdLimit ?? '-').padStart(8),
      ].join(' '),
    );
  }
  for (const b of idle.budget) {
    console.log(
      `budget (DESIGN §12, 10,000 idle ${b.kind} at ≤ ${b.target.maxRssBytes / 1024} KB RSS and < ${b.target.maxHeapBytes / 1024} KB heap each): ` +
        `${b.connections} open, ${kb(b.rssBytesPerConnection)} KB RSS, ${kb(b.heapBytesPerSession)} KB heap → ${b.meets ? 'met' : 'NOT met'}`,
    );
  }
  console.log(`  (${IDLE_NOTE_SHORT})`);
  printIdleErrors(idle.scenarios);
}

export const idleSuite = defineSuite<IdleSection>({
  name: 'idle',
  empty: () => ({ idle: { note: IDLE_NOTE, scenarios: [], budget: [] } }),
  heading: () => 'idle connections (fresh gateway per transport):',
  run: runIdle,
  summary: printIdle,
  needsFds: true,
});
