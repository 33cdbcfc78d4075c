import { Writable } from 'node:stream';
import type { DestinationStream } from 'pino';
import { bootstrap, listen, type Gateway } from '../../src/bootstrap';
import type { GatewayConfigOverrides } from '../../src/config/gateway-config';

export interface RunningGateway {
  gateway: Gateway;
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  close(): Promise<void>;
}

/** Boots the real gateway through bootstrap() on a free loopback port. */
export async function startGateway(
  config: GatewayConfigOverrides = {},
  env: Record<string, string> = {},
  options: { logStream?: DestinationStream } = {},
): Promise<RunningGateway> {
  const gateway = await bootstrap({
    // Audit lines are never below info (README "Security"): under the default silent level they
    // would still reach stdout, so they go nowhere unless a test reads them or TEST_LOG_LEVEL is set.
    logStream: options.logStream ?? (process.env.TEST_LOG_LEVEL === undefined ? discard() : undefined),
    // No warm stdio children unless a test asks for them: suites count child processes exactly.
    // Suites not about rate limits run without them: their anonymous clients all come from one
    // loopback address, so they would share one 100 req/s budget (test/rate-limit.test.ts turns them on).
    env: {
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      RATE_LIMIT_ENABLED: 'false',
      STDIO_WARM_PROCESSES: '0',
      ...env,
    },
    config: { host: '127.0.0.1', port: 0, ...config },
  });
  const url = await listen(gateway, 0);
  return {
    gateway,
    url,
    close: () => gateway.app.close(),
  };
}

/** A log destination that drops every line. */
function discard(): Writable {
  return new Writable({
    write(_chunk, _encoding, done) {
      done();
    },
  });
}
