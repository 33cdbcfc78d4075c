import pino, { type DestinationStream } from 'pino';
import type { GatewayConfig, LogLevelName } from '../../config/gateway-config';
import { AUDIT_FLOOR, LEVEL_VALUE, quieterThanAudit } from './log-levels';
import { PrettyLogStream } from './pretty-stream';

/** Readable lines on a terminal (or LOG_FORMAT=pretty), JSON lines otherwise; a test's stream when given. */
export function logDestination(config: GatewayConfig, stream?: DestinationStream): DestinationStream {
  if (stream) return stream;
  const pretty =
    config.logFormat === 'pretty' || (config.logFormat === 'auto' && process.stdout.isTTY === true);
  if (pretty) return new PrettyLogStream(process.stdout, process.stdout.isTTY === true);
  return pino.destination({ dest: 1, sync: false });
}

/** pino's own level: the lowest any module is set to, Audit's floor included (GatewayLogger filters per module). */
export function lowestLevel(config: GatewayConfig): LogLevelName {
  let lowest = quieterThanAudit(config.logLevel) ? AUDIT_FLOOR : config.logLevel;
  for (const l of Object.values(config.logLevels)) if (LEVEL_VALUE[l] < LEVEL_VALUE[lowest]) lowest = l;
  return lowest;
}
