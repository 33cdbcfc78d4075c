/**
 * Suite `compression`: what WebSocket permessage-deflate (WS_COMPRESSION) costs per idle
 * connection and saves on a large JSON tool result — a fresh gateway with it off, then one with
 * it on: idle connections that each carry one large result, then a closed loop of large results.
 */
import { runIdleScenario, type IdleScenarioResult } from '../idle-scenario';
import type { LoadResult } from '../ipc';
import { printScenarioErrors, runScenario, through, type ScenarioResult } from '../scenario';
import { withFreshGateway } from '../servers';
import { fmt, kb, round } from '../stats';
import { defineSuite, type SuiteContext } from '../suite';
import { printIdleErrors } from './idle';

interface CompressionSetting {
  /** The gateway's WS_COMPRESSION (clients always offer permessage-deflate). */
  compression: boolean;
  thresholdBytes: number;
  /** compressionConnections idle connections; `warm` = after each carried one large result. */
  idle: IdleScenarioResult | null;
  /** Closed loop of the large tools/call over WebSocket, per level. */
  largeResult: ScenarioResult[];
}

interface CompressionReport {
  /** Requested size of the large tool result's JSON text. */
  largeResultBytes: number;
  settings: CompressionSetting[];
  /** On minus off. */
  comparison: {
    /** Per idle connection that never carried a large message (only the negotiated extension). */
    idleRssBytesPerConnection: number | null;
    idleHeapBytesPerConnection: number | null;
    /** Per idle connection after it carried one large result (zlib state kept per connection). */
    warmRssBytesPerConnection: number | null;
    warmExternalBytesPerConnection: number | null;
    /** TCP bytes from the gateway per large result, off and on, and the saving. */
    wireBytesPerResult: { off: number | null; on: number | null; savedPercent: number | null };
    perLevel: Array<{
      sessions: number;
      reqPerSec: { off: number; on: number };
      latencyMs: { off: LoadResult['latencyMs']; on: LoadResult['latencyMs'] };
      /** On minus off. */
      latencyDiffMs: { p50: number; p99: number };
    }>;
  };
}

/** The gateway's default threshold, stated explicitly so the report says what was measured. */
const COMPRESSION_THRESHOLD = 1024;

async function runCompression({ opts, failures }: SuiteContext): Promise<{ compression: CompressionReport }> {
  const tool = { name: 'large', arguments: { bytes: opts.largeBytes } };
  const settings: CompressionSetting[] = [];
  for (const compression of [false, true]) {
    const name = `compression ${compression ? 'on' : 'off'}`;
    const env = {
      WS_COMPRESSION: String(compression),
      WS_COMPRESSION_THRESHOLD_BYTES: String(COMPRESSION_THRESHOLD),
    };
    try {
      settings.push(
        await withFreshGateway(opts.logLevel, name, env, async (upstream, gateway) => {
          const setting: CompressionSetting = {
            compression,
            thresholdBytes: COMPRESSION_THRESHOLD,
            idle: null,
            largeResult: [],
          };
          setting.idle = await runIdleScenario({
            kind: 'ws',
            connections: opts.compressionConnections,
            workers: Math.min(2, opts.idleWorkers),
            holdMs: Math.min(1_000, opts.idleHoldMs),
            gateway: gateway.child,
            gatewayUrl: gateway.url,
            upstream: upstream.child,
            wsCompression: true,
            gatewayCompression: compression,
            warmTool: tool,
            label: `ws ${name}: idle × ${opts.compressionConnections}`,
          });
          for (const n of opts.compressionLevels) {
            setting.largeResult.push(
              await runScenario({
                ...through(gateway, upstream),
                transport: 'ws',
                sessions: n,
                tool,
                wsCompression: true,
                durationMs: opts.compressionDurationMs,
                warmupMs: Math.min(500, opts.warmupMs),
                label: `${Math.round(opts.largeBytes / 1024)} KB result, ${name}`,
              }),
            );
          }
          return setting;
        }),
      );
    } catch (err) {
      failures.push({ what: `the ${name} scenario`, error: (err as Error).message });
    }
  }
  return { compression: compareCompression(opts.largeBytes, settings) };
}

function compareCompression(largeResultBytes: number, settings: CompressionSetting[]): CompressionReport {
  const off = settings.find((x) => !x.compression);
  const on = settings.find((x) => x.compression);
  const diff = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? null : a - b;
  const wire = (s: CompressionSetting | undefined) =>
    s?.largeResult.find((x) => x.wireBytesPerCall)?.wireBytesPerCall?.received ?? null;
  const wireOff = wire(off);
  const wireOn = wire(on);
  const perLevel: CompressionReport['comparison']['perLevel'] = [];
  for (const a of off?.largeResult ?? []) {
    const b = on?.largeResult.find((x) => x.sessions === a.sessions);
    if (!b || a.requests === 0 || b.requests === 0) continue;
    perLevel.push({
      sessions: a.sessions,
      reqPerSec: { off: a.reqPerSec, on: b.reqPerSec },
      latencyMs: { off: a.latencyMs, on: b.latencyMs },
      latencyDiffMs: {
        p50: round(b.latencyMs.p50 - a.latencyMs.p50),
        p99: round(b.latencyMs.p99 - a.latencyMs.p99),
      },
    });
  }
  const idle = on?.idle?.perConnection;
  const idleOff = off?.idle?.perConnection;
  const warm = on?.idle?.warm?.perConnection;
  const warmOff = off?.idle?.warm?.perConnection;
  return {
    largeResultBytes,
    settings,
    comparison: {
      idleRssBytesPerConnection: diff(idle?.gatewayRssBytes, idleOff?.gatewayRssBytes),
      idleHeapBytesPerConnection: diff(idle?.gatewayHeapBytes, idleOff?.gatewayHeapBytes),
      warmRssBytesPerConnection: diff(warm?.gatewayRssBytes, warmOff?.gatewayRssBytes),
      warmExternalBytesPerConnection: diff(warm?.gatewayExternalBytes, warmOff?.gatewayExternalBytes),
      wireBytesPerResult: {
        off: wireOff,
        on: wireOn,
        savedPercent: wireOff && wireOn !== null ? Math.round((1 - wireOn / wireOff) * 1000) / 10 : null,
      },
      perLevel,
    },
  };
}

function printCompression({ compression: c }: { compression: CompressionReport | null }): void {
  if (!c || c.settings.length === 0) return;
  console.log(`\nWebSocket permessage-deflate (threshold ${COMPRESSION_THRESHOLD} B, no context takeover):`);
  for (const st of c.settings) {
    const i = st.idle;
    const pc = i?.perConnection;
    const w = i?.warm?.perConnection;
    console.log(
      `  ${st.compression ? 'on ' : 'off'}: ${i?.established ?? 0} idle conns ${pc ? kb(pc.gatewayRssBytes) : '-'} KB RSS / ` +
        `${pc ? kb(pc.gatewayHeapBytes) : '-'} KB heap each; after one ${Math.round(c.largeResultBytes / 1024)} KB result ` +
        `${w ? kb(w.gatewayRssBytes) : '-'} KB RSS / ${w ? kb(w.gatewayExternalBytes) : '-'} KB external each` +
        (i?.errors ? `  errors ${i.errors}` : ''),
    );
    for (const r of st.largeResult) {
      console.log(
        `       @${String(r.sessions).padEnd(4)} ${String(r.reqPerSec).padStart(6)} req/s  p50 ${fmt(r.latencyMs.p50)}  ` +
          `p99 ${fmt(r.latencyMs.p99)} ms  ${r.wireBytesPerCall?.received ?? '-'} B on the wire per result` +
          `  extensions "${r.negotiatedExtensions ?? ''}"` +
          (r.errors ? `  errors ${r.errors}` : ''),
      );
    }
  }
  const cmp = c.comparison;
  const kbOrDash = (n: number | null) => (n === null ? '-' : kb(n));
  console.log(
    `  on − off: idle ${kbOrDash(cmp.idleRssBytesPerConnection)} KB RSS per connection, ` +
      `after a large result ${kbOrDash(cmp.warmRssBytesPerConnection)} KB RSS per connection; ` +
      `wire ${cmp.wireBytesPerResult.off ?? '-'} → ${cmp.wireBytesPerResult.on ?? '-'} B per result ` +
      `(${cmp.wireBytesPerResult.savedPercent ?? '-'} % saved)`,
  );
  for (const l of cmp.perLevel) {
    console.log(
      `  @${l.sessions}: latency on − off p50 ${l.latencyDiffMs.p50.toFixed(2)} ms, p99 ${l.latencyDiffMs.p99.toFixed(2)} ms; ` +
        `throughput ${l.reqPerSec.off} → ${l.reqPerSec.on} req/s`,
    );
  }
  printIdleErrors(c.settings.flatMap((s) => (s.idle ? [s.idle] : [])));
  for (const st of c.settings) {
    printScenarioErrors(
      st.largeResult,
      (s) => `large-result ws @${s.sessions} (compression ${st.compression ? 'on' : 'off'})`,
    );
  }
}

export const compressionSuite = defineSuite<{ compression: CompressionReport | null }>({
  name: 'compression',
  empty: () => ({ compression: null }),
  heading: () => 'WebSocket compression (fresh gateway per setting):',
  run: runCompression,
  summary: printCompression,
  needsFds: true,
});
