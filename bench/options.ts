/**
 * The bench's command line: every option declared once (flag, default, meaning, how its value is
 * read), parsed with `node:util` `parseArgs`. `run.ts` takes all of them, `suites/ring.ts` run
 * alone only its own; `--help` prints the table, an unknown option or a bad value is a
 * `UsageError` that says which and why.
 */
import { parseArgs } from 'node:util';
import type { IdleKind } from './idle-scenario';
import type { BenchTransport } from './ipc';

/** Every suite, in the order `--help` and the default `--suites` list them. */
export const SUITE_NAMES = [
  'ring',
  'load',
  'idle',
  'compression',
  'replicas',
  'ws-upstream',
  'pooled-idle',
  'flood',
  'rate-limit',
  'metrics',
  'tracing',
] as const;
export type SuiteName = (typeof SUITE_NAMES)[number];

export type LoadTarget = 'direct' | 'gateway' | 'demo';

export interface RingOptions {
  /** Length of one measured round per operation; three rounds, the median is reported. */
  ringMs: number;
  ringSizes: number[];
}

/** The parsed options; the results JSON carries them as `options`, in this shape. */
export interface Options {
  suites: SuiteName[];
  ring: RingOptions;
  durationMs: number;
  warmupMs: number;
  levels: number[];
  transports: BenchTransport[];
  targets: LoadTarget[];
  logLevel: string;
  profile: boolean;
  idleConnections: number;
  idleWorkers: number;
  idleKinds: IdleKind[];
  idleHoldMs: number;
  fdLimit: number;
  compressionConnections: number;
  compressionLevels: number[];
  compressionDurationMs: number;
  largeBytes: number;
  replicaSessions: number;
  wsUpstreamLevels: number[];
  pooledConnections: number;
  pooledMax: number;
  tracingSessions: number;
  pairRounds: number;
  pairDurationMs: number;
  pairWarmupMs: number;
}

export function defaultOptions(): Options {
  return {
    suites: [...SUITE_NAMES],
    ring: { ringMs: 25, ringSizes: [3, 30, 300] },
    durationMs: 5_000,
    warmupMs: 1_000,
    levels: [1, 50, 500],
    transports: ['streamable-http', 'sse', 'ws'],
    targets: ['direct', 'gateway', 'demo'],
    logLevel: 'warn',
    profile: false,
    idleConnections: 10_000,
    idleWorkers: 4,
    idleKinds: ['ws', 'sse'],
    idleHoldMs: 2_000,
    fdLimit: 65_536,
    compressionConnections: 1_000,
    compressionLevels: [1, 50],
    compressionDurationMs: 2_000,
    largeBytes: 65_536,
    replicaSessions: 50,
    wsUpstreamLevels: [1, 50, 500],
    pooledConnections: 10_000,
    pooledMax: 4,
    tracingSessions: 50,
    pairRounds: 3,
    pairDurationMs: 2_000,
    pairWarmupMs: 500,
  };
}

/** A bad command line: the message says what and the entry point prints it with a pointer to --help. */
export class UsageError extends Error {}

type Reader<T> = (flag: string, raw: string) => T;

const integer =
  (min: 0 | 1): Reader<number> =>
  (flag, raw) => {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isInteger(n) || n < min) {
      const what = min === 0 ? 'a whole number ≥ 0' : 'a positive integer';
      throw new UsageError(`--${flag}: expected ${what}, got "${raw}"`);
    }
    return n;
  };
const positive = integer(1);
const nonNegative = integer(0);
const text: Reader<string> = (_flag, raw) => raw;
const oneOf =
  <T extends string>(allowed: readonly T[]): Reader<T> =>
  (flag, raw) => {
    if (!(allowed as readonly string[]).includes(raw))
      throw new UsageError(`--${flag}: "${raw}" is not one of ${allowed.join(', ')}`);
    return raw as T;
  };
/** A comma-separated list (empty items dropped), each item read by `item`. */
const listOf =
  <T>(item: Reader<T>): Reader<T[]> =>
  (flag, raw) =>
    raw
      .split(',')
      .filter(Boolean)
      .map((v) => item(flag, v));

interface OptionSpec {
  /** `--help` text. */
  help: string;
  /** Shown instead of the default value in `--help` (when the value itself says little). */
  defaultText?: string;
  /** A flag without a value (`--profile`); otherwise `--name=value` or `--name value`. */
  flag?: true;
  read(opts: Options, flag: string, raw: string): void;
  show(opts: Options): unknown;
}

type FlatKey = Exclude<keyof Options, 'ring' | 'profile'>;

/** An option that sets `opts[key]` to its value read by `reader`. */
function field<K extends FlatKey>(key: K, reader: Reader<Options[K]>, help: string, defaultText?: string) {
  return {
    help,
    defaultText,
    read: (opts: Options, flag: string, raw: string) => {
      opts[key] = reader(flag, raw);
    },
    show: (opts: Options) => opts[key],
  } satisfies OptionSpec;
}

function ringField<K extends keyof RingOptions>(key: K, reader: Reader<RingOptions[K]>, help: string) {
  return {
    help,
    read: (opts: Options, flag: string, raw: string) => {
      opts.ring[key] = reader(flag, raw);
    },
    show: (opts: Options) => opts.ring[key],
  } satisfies OptionSpec;
}

/** Every option, by flag name, in the order `--help` lists them. */
export const OPTION_SPECS: Record<string, OptionSpec> = {
  suites: field(
    'suites',
    listOf(oneOf(SUITE_NAMES)),
    `which suites run: ${SUITE_NAMES.join(',')}`,
    `all ${SUITE_NAMES.length}`,
  ),
  'duration-ms': field('durationMs', positive, 'load: measured window per level'),
  'warmup-ms': field('warmupMs', nonNegative, 'load: load before the window opens (JIT, pools, connections)'),
  levels: field('levels', listOf(positive), 'load: concurrent sessions per level'),
  transports: field(
    'transports',
    listOf(oneOf(['streamable-http', 'sse', 'ws'] as const)),
    'load: client transports (ws is skipped for direct); metrics: its ws and streamable-http',
  ),
  targets: field(
    'targets',
    listOf(oneOf(['direct', 'gateway', 'demo'] as const)),
    'load: direct = fast upstream; gateway = gateway → fast upstream; demo = gateway with its embedded demo',
  ),
  'log-level': field('logLevel', text, "the gateways' LOG_LEVEL"),
  profile: {
    flag: true,
    help: 'load, tracing: CPU profile of the gateway per measured window, in dist/bench/profiles/',
    defaultText: 'off',
    read: (opts) => {
      opts.profile = true;
    },
    show: (opts) => opts.profile,
  },
  'idle-connections': field('idleConnections', positive, 'idle: connections per transport'),
  'idle-workers': field('idleWorkers', positive, 'idle, pooled-idle: client processes they are spread over'),
  'idle-kinds': field('idleKinds', listOf(oneOf(['ws', 'sse'] as const)), 'idle: which transports'),
  'idle-hold-ms': field(
    'idleHoldMs',
    nonNegative,
    'idle: how long the connections idle, once all are open, before the gateway is measured',
  ),
  'fd-limit': field(
    'fdLimit',
    positive,
    'idle, compression, pooled-idle: open-files limit asked for children',
  ),
  'compression-connections': field(
    'compressionConnections',
    positive,
    'compression: idle WebSocket connections per setting (off, on)',
  ),
  'compression-levels': field(
    'compressionLevels',
    listOf(positive),
    'compression: sessions in the closed loop of large results',
  ),
  'compression-duration-ms': field(
    'compressionDurationMs',
    positive,
    'compression: measured window per level (after ≤ 500 ms warm-up)',
  ),
  'large-bytes': field('largeBytes', positive, "compression: size of the large tool result's JSON text"),
  'ring-ms': ringField('ringMs', positive, 'ring: one measured round per operation (three rounds, median)'),
  'ring-sizes': ringField('ringSizes', listOf(positive), 'ring: replica counts'),
  'replica-sessions': field(
    'replicaSessions',
    positive,
    'replicas, rate-limit, metrics: concurrent sessions (client ids bench-client-<i>)',
  ),
  'ws-upstream-levels': field(
    'wsUpstreamLevels',
    listOf(positive),
    'ws-upstream: concurrent WebSocket sessions per level',
  ),
  'pooled-connections': field('pooledConnections', positive, 'pooled-idle: idle WebSocket sessions'),
  'pooled-max': field('pooledMax', positive, "pooled-idle: the pool's max (stdio child processes)"),
  'tracing-sessions': field('tracingSessions', positive, 'tracing: Streamable HTTP sessions'),
  'pair-rounds': field(
    'pairRounds',
    positive,
    'replicas, ws-upstream, rate-limit, metrics, tracing: measured rounds, alternated (medians reported)',
  ),
  'pair-duration-ms': field(
    'pairDurationMs',
    positive,
    'the same suites and flood: measured window per scenario',
  ),
  'pair-warmup-ms': field('pairWarmupMs', nonNegative, 'the same suites: load before the window opens'),
};

const show = (value: unknown) =>
  Array.isArray(value)
    ? value.join(',')
    : typeof value === 'boolean'
      ? value
        ? 'on'
        : 'off'
      : String(value);

/** The options table for `--help`: flag, default and meaning, one line each. */
export function helpText(command: string, flags: readonly string[] = Object.keys(OPTION_SPECS)): string {
  const defaults = defaultOptions();
  const rows = flags.map((f) => {
    const spec = OPTION_SPECS[f];
    return [spec.flag ? `--${f}` : `--${f}=…`, spec.defaultText ?? show(spec.show(defaults)), spec.help];
  });
  rows.push(['--help', '', 'print this and exit']);
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return [
    `usage: ${command} [options]   (see bench/README.md)`,
    '',
    `${'option'.padEnd(w0)}  ${'default'.padEnd(w1)}  meaning`,
    ...rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`),
  ].join('\n');
}

/**
 * Reads `argv` (options only, no positionals) into Options, starting from the defaults. Only the
 * flags in `flags` are accepted. Returns null when `--help` was asked for.
 */
export function parseOptions(
  argv: string[],
  flags: readonly string[] = Object.keys(OPTION_SPECS),
): Options | null {
  const config: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const f of flags) config[f] = { type: OPTION_SPECS[f].flag ? 'boolean' : 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: config, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError(usageMessage(err as Error & { code?: string }));
  }
  if (values.help) return null;
  const opts = defaultOptions();
  for (const f of flags) {
    const value = values[f];
    if (value !== undefined) OPTION_SPECS[f].read(opts, f, String(value));
  }
  return opts;
}

/** parseArgs's errors, said shortly: which argument, and what is wrong with it. */
function usageMessage(err: Error & { code?: string }): string {
  const option = /'(-[^' ]+)/.exec(err.message)?.[1];
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option ?? err.message}`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${/'([^']*)'/.exec(err.message)?.[1] ?? err.message} (options only, as --name=value)`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return option && OPTION_SPECS[option.replace(/^-+/, '')]?.flag
        ? `${option} takes no value`
        : `${option ?? 'an option'} needs a value (--name=value)`;
    default:
      return err.message;
  }
}
