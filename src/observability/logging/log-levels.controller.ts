import { BadRequestException, Body, Controller, Get, Put, UseGuards } from '@nestjs/common';
import { type LogLevelName, parseLogLevels } from '../../config/gateway-config';
import { AdminTokenGuard } from '../../routing/admin-token.guard';
import { LEVEL_VALUE, LogLevels } from './log-levels';

interface LogLevelsBody {
  /** The level of every module not named (LOG_LEVEL). */
  default?: unknown;
  /** Module → level; `null` puts a module back on the default. */
  modules?: Record<string, unknown>;
}

/** Reads and changes the log level per module at run time (admin token when one is set). */
@Controller('admin/log-levels')
@UseGuards(AdminTokenGuard)
export class LogLevelsController {
  @Get()
  get(): ReturnType<typeof LogLevels.snapshot> {
    return LogLevels.snapshot();
  }

  @Put()
  put(@Body() raw: unknown): ReturnType<typeof LogLevels.snapshot> {
    const body = parseBody(raw);
    const current = LogLevels.snapshot();
    const def = body?.default ?? current.default;
    if (typeof def !== 'string' || !(def in LEVEL_VALUE)) {
      throw new BadRequestException(`default must be one of ${Object.keys(LEVEL_VALUE).join(', ')}`);
    }
    const modules: Record<string, LogLevelName> = { ...current.modules };
    for (const [name, level] of Object.entries(body?.modules ?? {})) {
      if (level === null) {
        delete modules[name];
        continue;
      }
      const parsed = parseLogLevels(`${name}=${String(level)}`);
      if (!parsed) throw new BadRequestException(`bad level for ${name}: ${String(level)}`);
      modules[name] = parsed[name]!;
    }
    LogLevels.configure(def as LogLevelName, modules);
    return LogLevels.snapshot();
  }
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
  if (body.modules !== undefined && (typeof body.modules !== 'object' || body.modules === null)) {
    throw new BadRequestException('modules must be an object');
  }
  return body;
}
