import { Inject, Injectable } from '@nestjs/common';
import { Logger, PARAMS_PROVIDER_TOKEN, PinoLogger, type Params } from 'nestjs-pino';
import { LEVEL_VALUE, LogLevels } from './log-levels';

/** The Nest context (module name) of a call: Nest passes it as the last optional argument. */
function contextOf(params: unknown[]): string | undefined {
  const last = params[params.length - 1];
  return typeof last === 'string' ? last : undefined;
}

/**
 * nestjs-pino's Nest logger with a level per module: pino's own level is the lowest any module
 * needs (LogLevels sets it), and each call is let through only at its module's level.
 */
@Injectable()
export class GatewayLogger extends Logger {
  constructor(logger: PinoLogger, @Inject(PARAMS_PROVIDER_TOKEN) params: Params) {
    super(logger, params);
  }

  override verbose(message: unknown, ...params: unknown[]): void {
    if (LogLevels.enabled(LEVEL_VALUE.trace, contextOf(params))) super.verbose(message, ...params);
  }

  override debug(message: unknown, ...params: unknown[]): void {
    if (LogLevels.enabled(LEVEL_VALUE.debug, contextOf(params))) super.debug(message, ...params);
  }

  override log(message: unknown, ...params: unknown[]): void {
    if (LogLevels.enabled(LEVEL_VALUE.info, contextOf(params))) super.log(message, ...params);
  }

  override warn(message: unknown, ...params: unknown[]): void {
    if (LogLevels.enabled(LEVEL_VALUE.warn, contextOf(params))) super.warn(message, ...params);
  }

  override error(message: unknown, ...params: unknown[]): void {
    if (LogLevels.enabled(LEVEL_VALUE.error, contextOf(params))) super.error(message, ...params);
  }

  override fatal(message: unknown, ...params: unknown[]): void {
    if (LogLevels.enabled(LEVEL_VALUE.fatal, contextOf(params))) super.fatal(message, ...params);
  }
}
