import { z } from 'zod';
import { SERVER_SETTINGS } from './env/server';
import { SESSION_SETTINGS } from './env/sessions';
import { UPSTREAM_SETTINGS } from './env/upstreams';
import { CLIENT_TRANSPORT_SETTINGS } from './env/client-transports';
import { AUTH_SETTINGS } from './env/auth';
import { RATE_LIMIT_SETTINGS } from './env/rate-limits';
import { FLOOD_SETTINGS } from './env/flood';
import { TELEMETRY_SETTINGS } from './env/telemetry';
import { OPS_SETTINGS } from './env/ops';
import { UPSTREAM_POOL_SETTINGS } from './env/upstream-pools';
import type { EnvSetting } from './env/setting';

/**
 * Every environment variable the gateway reads, declared once: its name (the key), what it means
 * (`doc`), how its value is checked (`schema`) and its default (none: the variable is optional).
 * The sections live in src/config/env/, one file each; their order here is the order of README's
 * configuration reference, which scripts/config-table.mjs generates from this table. EnvSchema and
 * the EnvConfig type are derived from it, and load-config.ts maps the parsed values onto
 * GatewayConfig. Nothing else reads process.env.
 */
export const ENV_SETTINGS = mergeSections(
  SERVER_SETTINGS,
  SESSION_SETTINGS,
  UPSTREAM_SETTINGS,
  CLIENT_TRANSPORT_SETTINGS,
  AUTH_SETTINGS,
  RATE_LIMIT_SETTINGS,
  FLOOD_SETTINGS,
  TELEMETRY_SETTINGS,
  OPS_SETTINGS,
  UPSTREAM_POOL_SETTINGS,
);

/** The sections as one table, typed as all of them at once. */
type Merged<T extends readonly object[]> = T extends readonly [
  infer First,
  ...infer Rest extends readonly object[],
]
  ? First & Merged<Rest>
  : unknown;

/** One table of the sections; a name declared in two of them is a mistake, refused at start-up. */
function mergeSections<T extends readonly Record<string, EnvSetting>[]>(...sections: T): Merged<T> {
  const table: Record<string, EnvSetting> = {};
  for (const section of sections) {
    for (const [name, declared] of Object.entries(section)) {
      if (name in table) throw new Error(`environment setting ${name} is declared twice`);
      table[name] = declared;
    }
  }
  return table as Merged<T>;
}

type EnvSettings = typeof ENV_SETTINGS;

/** A declared setting's field of EnvSchema: its schema with its default applied, or optional. */
type EnvField<T extends EnvSetting> = T extends { default: unknown }
  ? z.ZodDefault<T['schema']>
  : z.ZodOptional<T['schema']>;

function envField(declared: EnvSetting): z.ZodTypeAny {
  return 'default' in declared ? declared.schema.default(declared.default) : declared.schema.optional();
}

/** The environment, validated: one field per ENV_SETTINGS entry, in the same order. */
export const EnvSchema = z.object(
  Object.fromEntries(Object.entries(ENV_SETTINGS).map(([name, declared]) => [name, envField(declared)])) as {
    [K in keyof EnvSettings]: EnvField<EnvSettings[K]>;
  },
);
export type EnvConfig = z.infer<typeof EnvSchema>;

/** How clients may authenticate (AUTH_MODE lists one or more). */
export type AuthModeName = NonNullable<EnvConfig['AUTH_MODE']>[number];
