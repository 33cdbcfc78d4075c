import type { Logger as Pino } from 'pino';
import type { LogLevelName } from '../../config/gateway-config';

/** pino's numeric levels; `silent` is above everything. */
export const LEVEL_VALUE: Record<LogLevelName, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
};

/**
 * The Audit logger (authentication, refusals, admin changes) never goes quieter than info: a
 * LOG_LEVEL or a `default` above it leaves Audit at info, and naming Audit above it is refused
 * (LOG_LEVELS at start, PUT /admin/log-levels live), so no one can switch off the record of
 * what they do with the admin token.
 */
export const AUDIT_MODULE = 'Audit';
export const AUDIT_FLOOR: LogLevelName = 'info';

/** Whether `level` would silence lines Audit must keep (it is above {@link AUDIT_FLOOR}). */
export function quieterThanAudit(level: LogLevelName): boolean {
  return LEVEL_VALUE[level] > LEVEL_VALUE[AUDIT_FLOOR];
}

/** A module's current threshold; a stable object the hot path keeps and reads as a number. */
export interface ModuleLevel {
  readonly name: string;
  value: number;
}

/**
 * Log level per module (the Nest logger context: `Session`, `StreamableHttp`, …), changeable at
 * run time (LOG_LEVELS, PUT /admin/log-levels). Module state because sessions and transports
 * log outside Nest's container; the hot path holds its ModuleLevel and compares one number
 * before it builds a line, so a disabled debug line costs nothing.
 */
class LogLevelRegistry {
  private defaultName: LogLevelName = 'info';
  private readonly overrides = new Map<string, LogLevelName>();
  private readonly modules = new Map<string, ModuleLevel>();
  private root: Pino | undefined = undefined;

  /** The threshold object of `name` (created on first use, updated in place afterwards). */
  module(name: string): ModuleLevel {
    let m = this.modules.get(name);
    if (!m) {
      m = { name, value: this.threshold(name) };
      this.modules.set(name, m);
    }
    return m;
  }

  enabled(level: number, module: string | undefined): boolean {
    const m = module === undefined ? undefined : this.modules.get(module);
    return level >= (m ? m.value : this.threshold(module));
  }

  /** The pino logger every line goes through: its level is the lowest any module needs. */
  attach(root: Pino | undefined): void {
    this.root = root;
    this.apply();
  }

  configure(defaultLevel: LogLevelName, byModule: Record<string, LogLevelName>, replace = true): void {
    this.defaultName = defaultLevel;
    if (replace) this.overrides.clear();
    for (const [k, v] of Object.entries(byModule)) this.overrides.set(k, v);
    this.apply();
  }

  snapshot(): { default: LogLevelName; modules: Record<string, LogLevelName> } {
    return { default: this.defaultName, modules: Object.fromEntries(this.overrides) };
  }

  /** The number a line of `module` must reach: its level, or the default; Audit at most info. */
  private threshold(module: string | undefined): number {
    const value = LEVEL_VALUE[(module !== undefined && this.overrides.get(module)) || this.defaultName];
    return module === AUDIT_MODULE ? Math.min(value, LEVEL_VALUE[AUDIT_FLOOR]) : value;
  }

  private apply(): void {
    for (const m of this.modules.values()) m.value = this.threshold(m.name);
    if (!this.root) return;
    // Audit's floor keeps pino itself at info at most, whatever the default.
    let lowest: LogLevelName = quieterThanAudit(this.defaultName) ? AUDIT_FLOOR : this.defaultName;
    for (const l of this.overrides.values()) if (LEVEL_VALUE[l] < LEVEL_VALUE[lowest]) lowest = l;
    this.root.level = lowest;
  }
}

export const LogLevels = new LogLevelRegistry();
