/**
 * Suite `replicas`: the same closed loop of tools/call (Streamable HTTP, `--replica-sessions`
 * sessions with distinct client ids) through one gateway to a service with one fast upstream
 * replica and to one with three, alternated per round. Every process shares the machine's cores,
 * so three upstreams do not add CPU: the figure shows what spreading costs or saves in the gateway.
 */
import { usageOf, type BenchChild } from '../children';
import { pairWindow, runScenario, through, type ScenarioResult } from '../scenario';
import { guarded, type Server } from '../servers';
import { fmt, medianOfRounds, signed, versus, type RoundMedian } from '../stats';
import { defineSuite, type SuiteContext } from '../suite';

interface ReplicaRun {
  replicas: number;
  /** 0: the warm-up round, left out of the medians. */
  round: number;
  scenario: ScenarioResult;
  /** tools/call answered by each replica during the scenario (warm-up and window), in replica order. */
  callsPerReplica: number[];
}

interface ReplicaReport {
  note: string;
  runs: ReplicaRun[];
  /** Median over the rounds, per replica count. */
  median: Array<{ replicas: number } & RoundMedian>;
  /** 3 replicas ÷ 1 replica, medians. */
  throughputRatio: number | null;
  p99DiffMs: number | null;
}

/** Streamable HTTP service over the fast upstreams' /mcp, one replica per URL (dedicated mode, ring on client_id). */
function replicatedService(name: string, upstreams: Server[]): Record<string, unknown> {
  return {
    mode: 'dedicated',
    replicas: upstreams.map((u, i) => ({
      id: `${name}-${i + 1}`,
      transport: 'streamable-http',
      url: `${u.url}/mcp`,
    })),
  };
}

const toolCallsOf = async (child: BenchChild) => (await usageOf(child, false))?.counts.toolCalls ?? 0;

async function runReplicas({ opts, failures }: SuiteContext): Promise<{ replicas: ReplicaReport }> {
  const runs: ReplicaRun[] = [];
  await guarded(failures, 'the replicas suite', opts.logLevel, async (servers) => {
    const ups: Server[] = [];
    for (let i = 1; i <= 3; i++) ups.push(await servers.upstream(`fast upstream ${i} (replicas)`));
    const gateway = await servers.gateway('gateway (1 vs 3 replicas)', {
      one: replicatedService('one', [ups[0]]),
      three: replicatedService('three', ups),
    });
    for (let round = 0; round <= opts.pairRounds; round++) {
      for (const [service, count] of [
        ['one', 1],
        ['three', 3],
      ] as const) {
        const before = await Promise.all(ups.slice(0, count).map((u) => toolCallsOf(u.child)));
        const scenario = await runScenario({
          ...pairWindow(opts),
          ...through(gateway, ups[0]),
          transport: 'streamable-http',
          sessions: opts.replicaSessions,
          path: `/mcp/${service}`,
          clientIdPrefix: 'bench-client',
          label: `${count} repl. r${round}`,
        });
        const after = await Promise.all(ups.slice(0, count).map((u) => toolCallsOf(u.child)));
        runs.push({ replicas: count, round, scenario, callsPerReplica: after.map((a, i) => a - before[i]) });
      }
    }
  });
  const medianOf = medianOfRounds(runs, (r) => r.scenario);
  const median = [1, 3].flatMap((replicas) => {
    const m = medianOf((r) => r.replicas === replicas);
    return m ? [{ replicas, ...m }] : [];
  });
  const one = median.find((m) => m.replicas === 1);
  const three = median.find((m) => m.replicas === 3);
  const vs = one && three ? versus(three, one) : null;
  return {
    replicas: {
      note:
        'Same gateway, services /mcp/one (1 fast upstream) and /mcp/three (3 fast upstreams, weight 1 each); ' +
        'sessions named bench-client-<i> so the ring (key client_id) spreads them. cpuPercent.upstream is replica 1 only.',
      runs,
      median,
      throughputRatio: vs?.throughputRatio ?? null,
      p99DiffMs: vs?.p99DiffMs ?? null,
    },
  };
}

function printReplicas({ replicas }: { replicas: ReplicaReport | null }): void {
  if (!replicas || replicas.runs.length === 0) return;
  console.log('\n1 vs 3 replicas (streamable-http through the gateway, distinct client ids):');
  for (const m of replicas.median) {
    const calls = replicas.runs
      .filter((r) => r.replicas === m.replicas && r.round > 0)
      .map((r) => r.callsPerReplica.join('/'))
      .join(', ');
    console.log(
      `  ${m.replicas} replica(s): median of ${m.rounds} ${m.reqPerSec} req/s  p50 ${fmt(m.p50)}  p99 ${fmt(m.p99)} ms` +
        `  calls per replica per round ${calls}` +
        (m.errors ? `  errors ${m.errors}` : ''),
    );
  }
  if (replicas.throughputRatio !== null && replicas.p99DiffMs !== null) {
    console.log(
      `  3 ÷ 1: throughput ${replicas.throughputRatio.toFixed(2)}×, p99 ${signed(replicas.p99DiffMs)} ms`,
    );
  }
}

export const replicasSuite = defineSuite<{ replicas: ReplicaReport | null }>({
  name: 'replicas',
  empty: () => ({ replicas: null }),
  heading: (opts) => `tools/call over 1 vs 3 replicas (streamable-http, ${opts.replicaSessions} sessions):`,
  run: runReplicas,
  summary: printReplicas,
});
