import { BadRequestException, Body, Controller, Get, Put } from '@nestjs/common';
import type { LogLevelName } from '../../config/gateway-config';
import { AdminRoute } from './admin-route.decorator';
import {
  AUDIT_FLOOR,
  AUDIT_MODULE,
  LEVEL_VALUE,
  LogLevels,
  quieterThanAudit,
} from '../../telemetry/logging/log-levels';

interface LogLevelsBody {
  /** The level of every module not named (LOG_LEVEL). */
  default?: unknown;
  /** Module → level; `null` puts a module back on the default. */
  modules?: Record<string, unknown>;
}

/** Reads and changes the log level per module at run time, behind the admin API's guards. */
@Controller('admin/log-levels')
@AdminRoute()
export class LogLevelsController {
  @Get()
  get(): ReturnType<typeof LogLevels.snapshot> {
    return LogLevels.snapshot();
  }

  @Put()
  put(@Body() raw: unknown): ReturnType<typeof LogLevels.snapshot> {
    const body = parseBody(raw);
    const current = LogLevels.snapshot();
    const def = body.default ?? current.default;
    // Own keys only: `"toString"` is `in` every object, and as a level it switched all logging off.
    if (!isLevel(def)) {
      throw new BadRequestException(`default must be one of ${Object.keys(LEVEL_VALUE).join(', ')}`);
    }
    const modules = new Map<string, LogLevelName>(Object.entries(current.modules));
    for (const [name, level] of Object.entries(body.modules ?? {})) {
      if (!MODULE_NAME.test(name)) throw new BadRequestException(`bad module name: ${name.slice(0, 80)}`);
      if (level === null) {
        modules.delete(name);
        continue;
      }
      if (!isLevel(level))
        throw new BadRequestException(`bad level for ${name}: ${String(level).slice(0, 80)}`);
      if (name === AUDIT_MODULE && quieterThanAudit(level)) {
        throw new BadRequestException(
          `${AUDIT_MODULE} cannot be set below ${AUDIT_FLOOR}: audit lines stay on`,
        );
      }
      modules.set(name, level);
    }
    // Every override is kept (and walked when levels change): a bound, not a map an API call grows forever.
    if (modules.size > MAX_MODULES) {
      throw new BadRequestException(`at most ${MAX_MODULES} modules may have their own level`);
    }
    LogLevels.configure(def, Object.fromEntries(modules));
    return LogLevels.snapshot();
  }
}

/** A Nest logger context (a class name such as `StreamableHttp`, `Audit`). */
const MODULE_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
const MAX_MODULES = 256;

function isLevel(value: unknown): value is LogLevelName {
  return typeof value === 'string' && Object.hasOwn(LEVEL_VALUE, value);
}

/** Bodies arrive as Buffers (see raw-body.ts): parsed here, refused with 400 when not a JSON object. */
function parseBody(raw: unknown): LogLevelsBody {
  let value: unknown = raw;
  if (Buffer.isBuffer(raw)) {
    try {
      value = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
    } catch {
      throw new BadRequestException('body must be JSON');
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BadRequestException('body must be a JSON object');
  }
  const body = value as LogLevelsBody;
  if (
    body.modules !== undefined &&
    (typeof body.modules !== 'object' || body.modules === null || Array.isArray(body.modules))
  ) {
    throw new BadRequestException('modules must be an object');
  }
  return body;
}
