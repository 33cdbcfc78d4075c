/**
 * Starting the processes a suite measures — the fast upstream and gateways configured for the
 * bench — and stopping them again, however the suite ends.
 */
import { forkChild, stopChild, waitReady, type BenchChild } from './children';

export interface Server {
  child: BenchChild;
  /** What the child announced once it listened, e.g. http://127.0.0.1:40000 */
  url: string;
}

export type Failures = Array<{ what: string; error: string }>;

/** Forks `dist/bench/<module>.js` and waits for its URL; a child that does not come up is stopped. */
export async function startServer(
  name: string,
  module: string,
  args: string[],
  execArgv: string[],
  timeoutMs: number,
): Promise<Server> {
  const child = forkChild(name, module, args, execArgv);
  try {
    return { child, url: await waitReady(child, timeoutMs) };
  } catch (err) {
    await stopChild(child);
    throw err;
  }
}

/** What `gateway-process.ts` boots: its environment (nothing is inherited) and configuration. */
export interface GatewayArgs {
  env: Record<string, string>;
  config: Record<string, unknown>;
}

/** A gateway process exactly as `args` say, without the bench's defaults (suite `flood`). */
export function startBareGateway(name: string, args: GatewayArgs, execArgv: string[] = []): Promise<Server> {
  return startServer(name, 'gateway-process', [JSON.stringify(args)], execArgv, 30_000);
}

/** The gateway with one dedicated service in front of the fast upstream's Streamable HTTP endpoint. */
export function fastService(upstreamUrl: string): Record<string, unknown> {
  return {
    bench: { mode: 'dedicated', replicas: [{ transport: 'streamable-http', url: `${upstreamUrl}/mcp` }] },
  };
}

/**
 * The servers one suite (or one scenario) starts, stopped together — last started first — by
 * `withServers` when it is done.
 */
export class ServerSet {
  private readonly started: BenchChild[] = [];

  constructor(private readonly logLevel: string) {}

  /** A fast upstream (bench/fast-upstream.ts). */
  async upstream(name = 'fast upstream'): Promise<Server> {
    // --expose-gc so its memory, like the gateway's, can be read after a full collection.
    return this.keep(await startServer(name, 'fast-upstream', [], ['--expose-gc'], 10_000));
  }

  /**
   * A gateway with these services (the first is the default), rate limits and the initialize
   * deadline off unless `env` turns them on; `extraConfig` is merged into its configuration.
   */
  async gateway(
    name: string,
    services: Record<string, unknown>,
    env: Record<string, string> = {},
    extraConfig: Record<string, unknown> = {},
  ): Promise<Server> {
    const args: GatewayArgs = {
      // Rate limits off unless a suite turns them on (suite `rate-limit`): the load workers' sessions
      // are anonymous clients of one loopback address and would share one 100 req/s budget.
      // No initialize deadline either: the idle suites hold thousands of bare connections open for
      // longer than its 10 s on purpose (that flood defence has its own suite, `flood`).
      env: { LOG_LEVEL: this.logLevel, RATE_LIMIT_ENABLED: 'false', INIT_DEADLINE_MS: '0', ...env },
      config: { services, defaultService: Object.keys(services)[0], ...extraConfig },
    };
    // --expose-gc only so memory "before"/"afterGc" are measured after a full collection.
    return this.keep(await startBareGateway(name, args, ['--expose-gc']));
  }

  /** A server started some other way, stopped with the rest. */
  keep(server: Server): Server {
    this.started.push(server.child);
    return server;
  }

  async stopAll(): Promise<void> {
    while (this.started.length > 0) await stopChild(this.started.pop()!);
  }
}

/** Runs `fn` with a fresh ServerSet and stops whatever it started, even when `fn` throws. */
export async function withServers<T>(logLevel: string, fn: (servers: ServerSet) => Promise<T>): Promise<T> {
  const servers = new ServerSet(logLevel);
  try {
    return await fn(servers);
  } finally {
    await servers.stopAll();
  }
}

/**
 * `withServers`, with what `fn` throws recorded as a failure of `what` instead of ending the
 * run: the suite reports what it measured before the failure.
 */
export async function guarded(
  failures: Failures,
  what: string,
  logLevel: string,
  fn: (servers: ServerSet) => Promise<void>,
): Promise<void> {
  try {
    await withServers(logLevel, fn);
  } catch (err) {
    failures.push({ what, error: (err as Error).message });
  }
}

/**
 * A fresh fast upstream and gateway (`env` added to the gateway's) for one idle or compression
 * scenario, stopped afterwards: the baseline is an empty gateway, and SSE sessions (resumable
 * until their idle timeout) cannot leak into the next scenario.
 */
export function withFreshGateway<T>(
  logLevel: string,
  name: string,
  env: Record<string, string>,
  fn: (upstream: Server, gateway: Server) => Promise<T>,
): Promise<T> {
  return withServers(logLevel, async (servers) => {
    const upstream = await servers.upstream(`fast upstream (${name})`);
    const gateway = await servers.gateway(`gateway (${name})`, fastService(upstream.url), env);
    return fn(upstream, gateway);
  });
}
