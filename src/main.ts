import { Logger } from 'nestjs-pino';
import { bootstrap, listen } from './bootstrap';
import { ConfigError } from './config/load-config';

/** Starts the gateway: build, listen, and leave shutdown to the SIGTERM/SIGINT hooks. */
async function main(): Promise<void> {
  const gateway = await bootstrap({ defaultConfigFile: 'gateway.yaml' });
  const url = await listen(gateway);
  gateway.app
    .get(Logger)
    .log(`MCP gateway listening on ${url} (Streamable HTTP: ${url}/mcp, legacy SSE: ${url}/sse)`);
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    console.error(err.message);
  } else {
    console.error('MCP gateway failed to start:', err instanceof Error ? err.message : err);
  }
  process.exit(1);
});
