/**
 * Suite `pooled-idle`: `--pooled-connections` WebSocket sessions against a gateway whose only
 * service is a pooled stdio server-everything (pool max `--pooled-max`). The sessions first idle
 * bare (sample "after"), then each initializes and makes one echo call through the pool and idles
 * again (sample "warm"): that is a pooled session's cost. Children counted from /proc.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { BENCH_DIR } from '../children';
import { runIdleScenario, type IdleScenarioResult } from '../idle-scenario';
import { guarded } from '../servers';
import { kb } from '../stats';
import { defineSuite, type SuiteContext } from '../suite';

interface PooledIdleReport {
  note: string;
  pool: Record<string, unknown>;
  scenario: IdleScenarioResult | null;
  /** Per session once every session has initialized and made one tools/call. */
  perSession: {
    gatewayRssBytes: number;
    gatewayHeapBytes: number;
    /** The stdio children's RSS (all of them) divided by the sessions they serve. */
    childrenRssBytes: number;
  } | null;
  childProcesses: { after: number | null; warm: number | null; afterClose: number | null; max: number };
}

const SERVER_EVERYTHING = resolve(
  BENCH_DIR,
  '../../node_modules/@modelcontextprotocol/server-everything/dist/index.js',
);

/** PIDs of every descendant of `pid`, from /proc (Linux). */
function descendantsOf(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // Fields after the command name (in parentheses, may hold spaces): state, ppid, …
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const c of children.get(queue.pop()!) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

async function runPooledIdle({ opts, failures }: SuiteContext): Promise<{ pooledIdle: PooledIdleReport }> {
  const pool = {
    min: 1,
    max: opts.pooledMax,
    // 4 workers × 64 warm-up calls in flight queue for the pool: room for all, time to drain them.
    maxWaitingClients: 20_000,
    acquireTimeoutMs: 30_000,
  };
  let scenario: IdleScenarioResult | null = null;
  await guarded(failures, 'the pooled-idle suite', opts.logLevel, async (servers) => {
    const gateway = await servers.gateway('gateway (pooled stdio)', {
      everything: {
        mode: 'pooled',
        pool,
        replicas: [{ transport: 'stdio', command: process.execPath, args: [SERVER_EVERYTHING, 'stdio'] }],
      },
    });
    const pid = gateway.child.process.pid!;
    scenario = await runIdleScenario({
      kind: 'ws',
      connections: opts.pooledConnections,
      workers: opts.idleWorkers,
      holdMs: opts.idleHoldMs,
      gateway: gateway.child,
      gatewayUrl: gateway.url,
      wsCompression: false,
      gatewayCompression: false,
      warmTool: { name: 'echo', arguments: { message: 'hello' } },
      probe: () => {
        const kids = descendantsOf(pid);
        return { childProcesses: kids.length, childrenRssBytes: kids.reduce((a, k) => a + rssOf(k), 0) };
      },
      label: `pooled stdio idle × ${opts.pooledConnections} (max ${opts.pooledMax})`,
    });
  });
  const sc = scenario as IdleScenarioResult | null;
  const warm = sc?.warm?.perConnection;
  const n = sc?.established ?? 0;
  return {
    pooledIdle: {
      note:
        'WebSocket sessions on a gateway with one pooled stdio service (server-everything). "after": bare sessions; ' +
        '"warm": each has initialized and made one echo call through the pool. Per session = (warm − before) / sessions, ' +
        'after a full GC; children counted as descendants of the gateway process in /proc.',
      pool,
      scenario: sc,
      perSession:
        warm && n > 0
          ? {
              gatewayRssBytes: warm.gatewayRssBytes,
              gatewayHeapBytes: warm.gatewayHeapBytes,
              childrenRssBytes: Math.round((sc?.probes?.warm?.childrenRssBytes ?? 0) / n),
            }
          : null,
      childProcesses: {
        after: sc?.probes?.after?.childProcesses ?? null,
        warm: sc?.probes?.warm?.childProcesses ?? null,
        afterClose: sc?.probes?.afterClose?.childProcesses ?? null,
        max: opts.pooledMax,
      },
    },
  };
}

function printPooledIdle({ pooledIdle: pooled }: { pooledIdle: PooledIdleReport | null }): void {
  if (!pooled?.scenario) return;
  const sc = pooled.scenario;
  const ps = pooled.perSession;
  const kids = pooled.childProcesses;
  console.log(`\npooled stdio server-everything (pool max ${kids.max}):`);
  console.log(
    `  ${sc.established}/${sc.connections} sessions open, errors ${sc.errors}; per initialized session: ` +
      (ps
        ? `gateway ${kb(ps.gatewayRssBytes)} KB RSS, ${kb(ps.gatewayHeapBytes)} KB heap; children ${kb(ps.childrenRssBytes)} KB RSS`
        : '-') +
      `; child processes bare/initialized/after close ${kids.after ?? '-'}/${kids.warm ?? '-'}/${kids.afterClose ?? '-'}`,
  );
  for (const e of sc.errorSamples) console.log(`  error: ${e}`);
}

export const pooledIdleSuite = defineSuite<{ pooledIdle: PooledIdleReport | null }>({
  name: 'pooled-idle',
  empty: () => ({ pooledIdle: null }),
  heading: () => 'idle sessions over a pooled stdio server-everything:',
  run: runPooledIdle,
  summary: printPooledIdle,
  needsFds: true,
});
