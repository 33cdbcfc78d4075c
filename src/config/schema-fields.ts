import { z } from 'zod';

/**
 * Field builders shared by the environment settings and gateway.yaml. Environment values arrive
 * as strings, so numbers are coerced and booleans accept `true/false/1/0` as well as YAML booleans.
 */

/** An integer within [min, max], from a number or a numeric string. */
export const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

/** A comma-separated list (blanks dropped), or an array given in code. */
export const csv = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  )
  .or(z.array(z.string()));

/** A boolean, or one of the strings true, false, 1, 0. */
export const bool = z.union([
  z.boolean(),
  z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1'),
]);
