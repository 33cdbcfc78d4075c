import type { IncomingHttpHeaders } from 'node:http';
import { Header } from '../../../libs/protocol/src';

/**
 * MCP 2026-07-28 custom request headers (SEP-2243): a tool's `inputSchema` may mark parameters
 * with `x-mcp-header: "{Name}"`; clients mirror their values into `Mcp-Param-{Name}` headers and
 * anything that processes the body must check header and body agree (400 / −32020 otherwise).
 *
 * This module is pure: it reads annotations out of a schema, decodes header values and compares
 * them with the call's arguments. Who caches the schemas is the caller's business.
 */

/** One parameter mirrored into a header: where it sits in `arguments` and the header that carries it. */
export interface HeaderParam {
  /** Chain of `properties` keys from the schema root to the annotated property. */
  readonly path: readonly string[];
  /** The `x-mcp-header` value as the schema spells it (for messages). */
  readonly name: string;
  /** The full header name, lower-cased as Node presents it: `mcp-param-{name}`. */
  readonly header: string;
  readonly type: 'string' | 'integer' | 'boolean';
}

/** What a tool's schema says about custom headers. */
export type HeaderParams =
  | { readonly valid: true; readonly params: readonly HeaderParam[] }
  | { readonly valid: false; readonly reason: string };

const NONE: HeaderParams = { valid: true, params: [] };
/** RFC 9110 `token` (field-name syntax). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110 field value characters once OWS is trimmed: VCHAR, SP, HTAB. */
const FIELD_VALUE = /^[\x20-\x7e\t]*$/;
/** Canonical, padded base64 (RFC 4648 §4): length a multiple of 4, `=` only at the end. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const SENTINEL_PREFIX = '=?base64?';
const SENTINEL_SUFFIX = '?=';
/** Keywords under which an `x-mcp-header` is not statically reachable (the annotation is invalid there). */
const NESTED_SCHEMA_KEYS = [
  'items',
  'prefixItems',
  'additionalItems',
  'contains',
  'additionalProperties',
  'patternProperties',
  'unevaluatedProperties',
  'unevaluatedItems',
  'propertyNames',
  'oneOf',
  'anyOf',
  'allOf',
  'not',
  'if',
  'then',
  'else',
  'dependentSchemas',
  '$defs',
  'definitions',
];

/**
 * The `x-mcp-header` annotations of a tool's `inputSchema`, validated against the spec's
 * constraints (non-empty token, case-insensitively unique, primitive type other than `number`,
 * reachable from the root through `properties` keys only). An invalid definition yields
 * `valid: false`: conforming clients drop such tools, so there is nothing to enforce.
 */
export function headerParamsOf(inputSchema: unknown): HeaderParams {
  if (!isObject(inputSchema)) return NONE;
  const params: HeaderParam[] = [];
  const seen = new Set<string>();
  const problem = collect(inputSchema, [], params, seen, true);
  if (problem !== undefined) return { valid: false, reason: problem };
  return params.length === 0 ? NONE : { valid: true, params };
}

function collect(
  schema: Record<string, unknown>,
  path: string[],
  out: HeaderParam[],
  seen: Set<string>,
  reachable: boolean,
): string | undefined {
  const annotation = schema['x-mcp-header'];
  if (annotation !== undefined) {
    if (!reachable || path.length === 0) {
      return `x-mcp-header at ${pointer(path)} is not reachable from the schema root through properties only`;
    }
    if (typeof annotation !== 'string' || !TOKEN.test(annotation)) {
      return `x-mcp-header at ${pointer(path)} is not a valid header name token`;
    }
    const key = annotation.toLowerCase();
    if (seen.has(key)) return `x-mcp-header "${annotation}" is used more than once`;
    seen.add(key);
    const type = schema.type;
    if (type !== 'string' && type !== 'integer' && type !== 'boolean') {
      return `x-mcp-header "${annotation}" is on a parameter of type ${JSON.stringify(type)} (only string, integer, boolean)`;
    }
    out.push({ path: [...path], name: annotation, header: `${Header.ParamPrefix}${key}`, type });
  }
  const properties = schema.properties;
  if (isObject(properties)) {
    for (const [name, sub] of Object.entries(properties)) {
      if (!isObject(sub)) continue;
      const problem = collect(sub, [...path, name], out, seen, reachable);
      if (problem !== undefined) return problem;
    }
  }
  // Annotations anywhere else make the definition invalid: look for them, never accept them.
  for (const keyword of NESTED_SCHEMA_KEYS) {
    const value = schema[keyword];
    const subs = Array.isArray(value)
      ? value
      : keyword === 'patternProperties' ||
          keyword === 'dependentSchemas' ||
          keyword === '$defs' ||
          keyword === 'definitions'
        ? isObject(value)
          ? Object.values(value)
          : []
        : [value];
    for (const sub of subs) {
      if (!isObject(sub)) continue;
      const problem = collect(sub, [...path, keyword], out, seen, false);
      if (problem !== undefined) return problem;
    }
  }
  return undefined;
}

/**
 * Decodes an `Mcp-Name` / `Mcp-Param-*` value: the `=?base64?…?=` sentinel form is strict
 * padded base64 of UTF-8; anything else is literal. Undefined when the value has characters a
 * header may not carry, or the sentinel wraps malformed base64 or bytes that are not UTF-8.
 * Node has already stripped the optional whitespace around the field value.
 */
export function decodeHeaderValue(value: string): string | undefined {
  if (!FIELD_VALUE.test(value)) return undefined;
  if (
    value.length < SENTINEL_PREFIX.length + SENTINEL_SUFFIX.length ||
    !value.startsWith(SENTINEL_PREFIX) ||
    !value.endsWith(SENTINEL_SUFFIX)
  ) {
    return value;
  }
  const b64 = value.slice(SENTINEL_PREFIX.length, -SENTINEL_SUFFIX.length);
  if (!BASE64.test(b64)) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(b64, 'base64'));
  } catch {
    return undefined;
  }
}

/**
 * Checks the `Mcp-Param-*` headers of a `tools/call` against its arguments. Returns undefined
 * when they agree, or the reason for the −32020 refusal. A value that is absent or null needs no
 * header (and must not have one); a present value needs its header, equal after decoding
 * (integers compared numerically).
 */
export function checkParamHeaders(
  params: readonly HeaderParam[],
  args: unknown,
  headers: IncomingHttpHeaders,
): string | undefined {
  for (const p of params) {
    const value = valueAt(args, p.path);
    const raw = headers[p.header];
    const header = typeof raw === 'string' ? raw : Array.isArray(raw) ? raw.join(', ') : undefined;
    const label = `Mcp-Param-${p.name}`;
    if (value === undefined || value === null) {
      if (header !== undefined) {
        return `${label} header is present but the body has no value for ${p.path.join('.')}`;
      }
      continue;
    }
    if (header === undefined) {
      return `${label} header is required: the body has a value for ${p.path.join('.')}`;
    }
    const decoded = decodeHeaderValue(header);
    if (decoded === undefined) return `${label} header value is malformed (invalid characters or Base64)`;
    if (!matches(value, decoded)) {
      return `${label} header value '${decoded}' does not match body value '${stringOf(value)}'`;
    }
  }
  return undefined;
}

function matches(value: unknown, header: string): boolean {
  switch (typeof value) {
    case 'string':
      return value === header;
    case 'boolean':
      return header === String(value);
    case 'number': {
      const trimmed = header.trim();
      if (trimmed === '' || !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(trimmed)) return false;
      return Number(trimmed) === value;
    }
    default:
      return false; // objects and arrays cannot be mirrored into a header
  }
}

function valueAt(args: unknown, path: readonly string[]): unknown {
  let current = args;
  for (const key of path) {
    if (!isObject(current) || !Object.prototype.hasOwnProperty.call(current, key)) return undefined;
    current = current[key];
  }
  return current;
}

function stringOf(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function pointer(path: readonly string[]): string {
  return path.length === 0 ? '/' : `/${path.join('/')}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
