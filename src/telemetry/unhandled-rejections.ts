import { randomUUID } from 'node:crypto';
import { Logger, type INestApplication } from '@nestjs/common';
import { GatewayMetrics } from './gateway-metrics.service';

/** The `entry` label of mcp_gateway_internal_errors_total for a rejection nothing handled. */
export const UNHANDLED_REJECTION_ENTRY = 'unhandled_rejection';

/**
 * The last resort behind the error boundaries (CONVENTIONS 16): a promise rejection that nothing
 * handled is a bug in a fire-and-forget chain, not a reason to drop every session of the process.
 * It is logged (error, with a correlation id and the stack), counted in
 * mcp_gateway_internal_errors_total{entry="unhandled_rejection"}, and the gateway keeps serving.
 * An uncaught exception is left to Node (the process exits 1): after a synchronous throw escaped
 * every boundary, no one can say what state the process is in. Installed by main.ts only: tests
 * and embedders keep their own process policy. Returns the function that removes it.
 */
export function keepServingOnUnhandledRejection(app: INestApplication): () => void {
  const metrics = app.get(GatewayMetrics);
  const log = new Logger('Process');
  const onRejection = (reason: unknown): void => {
    try {
      metrics.internalError(UNHANDLED_REJECTION_ENTRY);
      const err = reason instanceof Error ? reason : new Error(`non-Error rejection: ${String(reason)}`);
      const correlationId = randomUUID();
      log.error(
        { event: UNHANDLED_REJECTION_ENTRY, correlationId, err },
        `unhandled promise rejection (kept serving; correlationId=${correlationId}): ${err.name}: ${err.message}`,
      );
    } catch {
      // Logging itself failed: the count above is what is left; never throw from here.
    }
  };
  process.on('unhandledRejection', onRejection);
  return () => process.off('unhandledRejection', onRejection);
}
