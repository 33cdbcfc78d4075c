import type { z } from 'zod';

/** One environment variable; `setting()` checks that the default is a value the schema accepts. */
export interface EnvSetting<S extends z.ZodTypeAny = z.ZodTypeAny> {
  /** What the variable means, as README's configuration reference shows it. */
  readonly doc: string;
  /** Checks (and coerces) the value; environment values arrive as strings. */
  readonly schema: S;
  /** Used when the variable is unset or empty; absent: the setting is optional (undefined). */
  readonly default?: z.input<S>;
}

/** Declares one setting (its name is its key in the section's table). */
export function setting<S extends z.ZodTypeAny>(declared: {
  doc: string;
  schema: S;
  default: z.input<S>;
}): EnvSetting<S> & { default: z.input<S> };
export function setting<S extends z.ZodTypeAny>(declared: { doc: string; schema: S }): EnvSetting<S>;
export function setting<S extends z.ZodTypeAny>(declared: EnvSetting<S>): EnvSetting<S> {
  return declared;
}
