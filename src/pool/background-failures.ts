import { Logger } from '@nestjs/common';

const log = new Logger('Pool');

/**
 * Failures of fire-and-forget work in src/pool (a promise chain nobody awaits), by task. A bug
 * there must neither become an unhandled rejection nor vanish: each is logged and counted here
 * (`mcp_gateway_pool_background_failures_total{task}`). Process-wide, like Node's own process
 * metrics: the chains run below any one gateway's request.
 */
export const backgroundFailures = new Map<string, number>();

/**
 * The trailing `.catch` of a fire-and-forget chain of `task`. Built once per task at module
 * load, so a chain on the hot path allocates no closure for it.
 */
export function onBackgroundFailure(task: string): (err: unknown) => void {
  return (err: unknown) => {
    backgroundFailures.set(task, (backgroundFailures.get(task) ?? 0) + 1);
    log.error({ task, err }, `background task ${task} failed: ${(err as Error)?.message ?? String(err)}`);
  };
}
