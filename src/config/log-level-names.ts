/** The pino level names LOG_LEVEL and LOG_LEVELS accept, and the parser of LOG_LEVELS. */

export const LOG_LEVEL_NAMES = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevelName = (typeof LOG_LEVEL_NAMES)[number];

/** `Module=level,Other=level` → a map; undefined when a pair or a level is not valid. */
export function parseLogLevels(text: string): Record<string, LogLevelName> | undefined {
  const out: Record<string, LogLevelName> = {};
  for (const part of text.split(',')) {
    const pair = part.trim();
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const level = pair.slice(eq + 1).trim() as LogLevelName;
    if (eq <= 0 || name === '' || !LOG_LEVEL_NAMES.includes(level)) return undefined;
    out[name] = level;
  }
  return out;
}
