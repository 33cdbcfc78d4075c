/**
 * The gateway under test, in a process of its own so the load generator does not share its
 * event loop. Boots through the same bootstrap() as main.ts and the tests.
 *
 * argv[2]: JSON {env, config} handed to bootstrap() (env replaces process.env, so the bench
 * never picks up the caller's environment or a gateway.yaml by accident).
 * IPC: sends {type:'ready', url} or {type:'failed', error}; answers {type:'usage', gc} with
 * memory and CPU use (after a full GC when asked and --expose-gc is on) and counts (sessions,
 * upstream leases, open fds), and {type:'profile'} by starting/stopping a CPU profile.
 */
import { bootstrap, listen } from '../src/bootstrap';
import type { GatewayConfigOverrides } from '../src/config/gateway-config';
import { PoolManager } from '../src/pool/pool-manager.service';
import { SessionService } from '../src/session/session.module';
import type { FailedMessage, ReadyMessage } from './ipc';
import { answerProfileRequests } from './profiler';
import { answerUsageRequests } from './usage';

interface GatewayProcessArgs {
  env: Record<string, string>;
  config: GatewayConfigOverrides;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{"env":{},"config":{}}') as GatewayProcessArgs;
  const gateway = await bootstrap({ env: args.env, config: { host: '127.0.0.1', port: 0, ...args.config } });
  const url = await listen(gateway, 0);

  // Looked up once; a count the gateway no longer offers is left out of the reply.
  const sessions = lookup(gateway, SessionService);
  const pool = lookup(gateway, PoolManager);
  answerUsageRequests(() => {
    const counts: Record<string, number> = {};
    if (sessions) counts.sessions = sessions.size;
    if (pool) counts.upstreamLeases = pool.stats().open;
    return counts;
  });
  answerProfileRequests();
  // The orchestrator going away (IPC closed) means this process should too.
  process.on('disconnect', () => {
    void gateway.app.close().finally(() => process.exit(0));
  });

  if (process.send) process.send({ type: 'ready', url } satisfies ReadyMessage);
  else console.log(url);
}

function lookup<T>(
  gateway: { app: { get(token: unknown, opts: object): unknown } },
  token: new (...args: any[]) => T,
): T | undefined {
  try {
    return gateway.app.get(token, { strict: false }) as T;
  } catch {
    return undefined;
  }
}

main().catch((err: unknown) => {
  const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
  if (process.send) process.send({ type: 'failed', error } satisfies FailedMessage, () => process.exit(1));
  else {
    console.error(error);
    process.exit(1);
  }
});
