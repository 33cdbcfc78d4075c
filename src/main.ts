import { Logger } from 'nestjs-pino';
import { bootstrap, listen, type Gateway } from './bootstrap';
import { ConfigError } from './config/load-config';
import { keepServingOnUnhandledRejection } from './telemetry/unhandled-rejections';

/**
 * Past SHUTDOWN_GRACE_MS (the wait for requests in flight), closing what is left gets this long
 * before the process exits anyway: shutdown is bounded whatever the number of sessions.
 */
const SHUTDOWN_CLOSE_MARGIN_MS = 1000;

/** Starts the gateway: build, listen, and shut down on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  const gateway = await bootstrap({ defaultConfigFile: 'gateway.yaml' });
  keepServingOnUnhandledRejection(gateway.app);
  const url = await listen(gateway);
  const log = gateway.app.get(Logger);
  log.log(`MCP gateway listening on ${url} (Streamable HTTP: ${url}/mcp, legacy SSE: ${url}/sse)`);
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    shutdown(gateway, log, signal);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

/**
 * Runs the shutdown hooks (drain requests in flight for up to SHUTDOWN_GRACE_MS, end sessions,
 * close upstreams and the server) and exits 0. A deadline is the backstop: if closing hangs,
 * the process exits 1 when it passes.
 */
function shutdown(gateway: Gateway, log: Logger, signal: NodeJS.Signals): void {
  const started = Date.now();
  const limitMs = gateway.config.shutdownGraceMs + SHUTDOWN_CLOSE_MARGIN_MS;
  log.log(`${signal}: shutting down (at most ${limitMs} ms)`);
  const deadline = setTimeout(() => {
    log.error(`shutdown did not finish within ${limitMs} ms; exiting anyway`);
    process.exit(1);
  }, limitMs);
  gateway.app.close().then(
    () => {
      clearTimeout(deadline);
      log.log(`shutdown complete in ${Date.now() - started} ms`);
      process.exit(0);
    },
    (err: unknown) => {
      clearTimeout(deadline);
      log.error(`shutdown failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    console.error(err.message);
  } else {
    console.error('MCP gateway failed to start:', err instanceof Error ? err.message : err);
  }
  process.exit(1);
});
