/**
 * Suite `rate-limit`: what the per-message policy costs. First one decision in this process —
 * the gateway's synchronous token bucket (src/policy/rate-limit/token-bucket.ts) next to
 * rate-limiter-flexible's RateLimiterMemory, whose consume() returns a promise per call (a fixed
 * number of calls, about a second; alone: `node dist/bench/suites/rate-limit.js`). Then the closed
 * loop of tools/call at `--replica-sessions` sessions (distinct client ids, so one bucket each)
 * through gateways on the same fast upstream, alternating per round: limits off, limits on (a
 * limit no session reaches: every request is checked, none refused), and API-key authentication
 * with limits on.
 */
import { createHash } from 'node:crypto';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { TokenBucket } from '../../src/policy/rate-limit/token-bucket';
import type { BenchTransport } from '../ipc';
import { pairWindow, runScenario, through, type ScenarioResult } from '../scenario';
import { fastService, guarded } from '../servers';
import { fmt, medianOfRounds, round, type RoundMedian } from '../stats';
import { defineSuite, type SuiteContext } from '../suite';

export interface LimiterMicroReport {
  calls: number;
  keys: number;
  /** ns per decision, synchronous token bucket (Map lookup + arithmetic). */
  tokenBucketNs: number;
  /** ns per decision, `await limiter.consume(key)` one after another. */
  flexibleAwaitedNs: number;
  /** ns per decision, consume() calls issued together and awaited with Promise.all (its best case). */
  flexibleBatchedNs: number;
}

export async function runLimiterMicro(calls = 200_000, keys = 50): Promise<LimiterMicroReport> {
  const names = Array.from({ length: keys }, (_, i) => `bench-client-${i}`);
  const limit = { perSecond: 1e9, burst: 1e9 };
  // Each measured twice, the first pass a warm-up (JIT), so neither side pays for compiling.
  let tokenBucketNs = 0;
  let flexibleAwaitedNs = 0;
  let flexibleBatchedNs = 0;
  for (let pass = 0; pass < 2; pass++) {
    const buckets = new Map<string, TokenBucket>();
    let t = process.hrtime.bigint();
    let refused = 0;
    for (let i = 0; i < calls; i++) {
      const key = names[i % keys];
      let bucket = buckets.get(key);
      if (bucket === undefined) {
        bucket = new TokenBucket(limit, Date.now(), key, undefined, 'default');
        buckets.set(key, bucket);
      }
      if (bucket.take(Date.now()) !== 0) refused++;
    }
    tokenBucketNs = Number(process.hrtime.bigint() - t) / calls;
    if (refused > 0) throw new Error(`token bucket refused ${refused} calls under an unreachable limit`);

    const flexible = new RateLimiterMemory({ points: 1e9, duration: 1, keyPrefix: `awaited${pass}` });
    t = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) await flexible.consume(names[i % keys]);
    flexibleAwaitedNs = Number(process.hrtime.bigint() - t) / calls;

    const batched = new RateLimiterMemory({ points: 1e9, duration: 1, keyPrefix: `batched${pass}` });
    t = process.hrtime.bigint();
    for (let i = 0; i < calls; i += 1000) {
      const batch: Promise<unknown>[] = [];
      for (let j = i; j < i + 1000 && j < calls; j++) batch.push(batched.consume(names[j % keys]));
      await Promise.all(batch);
    }
    flexibleBatchedNs = Number(process.hrtime.bigint() - t) / calls;
  }
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    calls,
    keys,
    tokenBucketNs: r(tokenBucketNs),
    flexibleAwaitedNs: r(flexibleAwaitedNs),
    flexibleBatchedNs: r(flexibleBatchedNs),
  };
}

/** off: no policy; on: rate limits; auth: API-key authentication and rate limits. */
type PolicyVariant = 'off' | 'on' | 'auth';

/** The API key of the authenticated variant (a bench secret, nothing else). */
const BENCH_API_KEY = 'bench-api-key-not-a-secret-0123456789';

interface RateLimitReport {
  note: string;
  micro: LimiterMicroReport;
  runs: Array<{ limits: PolicyVariant; transport: BenchTransport; round: number; scenario: ScenarioResult }>;
  median: Array<{ limits: PolicyVariant; transport: BenchTransport } & RoundMedian>;
  /** limits on ÷ limits off, req/s, per transport. */
  throughputRatio: Partial<Record<BenchTransport, number>>;
  /** API-key authentication and limits on ÷ both off, req/s, per transport. */
  authThroughputRatio: Partial<Record<BenchTransport, number>>;
}

async function runRateLimit({ opts, failures }: SuiteContext): Promise<{ rateLimit: RateLimitReport }> {
  const micro = await runLimiterMicro();
  console.log(
    `  one decision: token bucket ${micro.tokenBucketNs} ns, RateLimiterMemory awaited ${micro.flexibleAwaitedNs} ns, ` +
      `batched ${micro.flexibleBatchedNs} ns`,
  );
  const runs: RateLimitReport['runs'] = [];
  const transports: BenchTransport[] = ['streamable-http', 'ws'];
  await guarded(failures, 'the rate-limit suite', opts.logLevel, async (servers) => {
    const up = await servers.upstream('fast upstream (rate-limit)');
    const limitsOn = { RATE_LIMIT_ENABLED: 'true', RATE_LIMIT_PER_SECOND: '1000000' };
    const off = await servers.gateway('gateway (limits off)', fastService(up.url));
    const on = await servers.gateway('gateway (limits on)', fastService(up.url), limitsOn);
    const digest = `sha256:${createHash('sha256').update(BENCH_API_KEY).digest('hex')}`;
    const auth = await servers.gateway(
      'gateway (auth and limits on)',
      fastService(up.url),
      // One client for every session: no per-client session cap (WebSocket sessions outlive their round).
      { ...limitsOn, AUTH_MODE: 'api_key', MAX_SESSIONS_PER_CLIENT: '0' },
      { clients: { bench: { apiKeys: [digest] } } },
    );
    for (let round = 0; round <= opts.pairRounds; round++) {
      for (const transport of transports) {
        for (const [limits, gw] of [
          ['off', off],
          ['on', on],
          ['auth', auth],
        ] as const) {
          const scenario = await runScenario({
            ...pairWindow(opts),
            ...through(gw, up),
            transport,
            sessions: opts.replicaSessions,
            clientIdPrefix: 'bench-client',
            ...(limits === 'auth' ? { apiKey: BENCH_API_KEY } : {}),
            label: `limits ${limits} r${round}`,
          });
          runs.push({ limits, transport, round, scenario });
        }
      }
    }
  });
  const median: RateLimitReport['median'] = [];
  const throughputRatio: RateLimitReport['throughputRatio'] = {};
  const authThroughputRatio: RateLimitReport['authThroughputRatio'] = {};
  const medianOf = medianOfRounds(runs, (r) => r.scenario);
  for (const transport of transports) {
    const pick = (limits: PolicyVariant) => medianOf((r) => r.limits === limits && r.transport === transport);
    const offM = pick('off');
    const onM = pick('on');
    if (offM) median.push({ limits: 'off', transport, ...offM });
    if (onM) median.push({ limits: 'on', transport, ...onM });
    if (offM && onM) throughputRatio[transport] = round(onM.reqPerSec / offM.reqPerSec);
    const authM = pick('auth');
    if (authM) median.push({ limits: 'auth', transport, ...authM });
    if (offM && authM) authThroughputRatio[transport] = round(authM.reqPerSec / offM.reqPerSec);
  }
  for (const m of median) {
    console.log(
      `  ${m.transport} limits ${m.limits}: median of ${m.rounds} ${m.reqPerSec} req/s  p50 ${fmt(m.p50)}  p99 ${fmt(m.p99)} ms` +
        (m.errors ? `  errors ${m.errors}` : ''),
    );
  }
  return {
    rateLimit: {
      note:
        'Two gateways on one fast upstream, sessions bench-client-<i> (one bucket each); limits on = RATE_LIMIT_PER_SECOND=1000000 ' +
        '(every request checked, none refused); auth = AUTH_MODE=api_key (X-API-Key on every request, one client) plus limits; ' +
        'round 0 is warm-up and left out of the medians.',
      micro,
      runs,
      median,
      throughputRatio,
      authThroughputRatio,
    },
  };
}

export const rateLimitSuite = defineSuite<{ rateLimit: RateLimitReport | null }>({
  name: 'rate-limit',
  empty: () => ({ rateLimit: null }),
  heading: (opts) => `rate limits on vs off (${opts.replicaSessions} sessions, distinct client ids):`,
  run: runRateLimit,
});

if (require.main === module) {
  void runLimiterMicro().then((report) => console.log(JSON.stringify(report, null, 2)));
}
