/**
 * The per-request `_meta` members of MCP 2026-07-28 (schema `RequestMetaObject`): what a
 * sessionless request must carry in place of the initialize handshake, and the shape of each
 * member. A gateway that bridges such requests to an initialize-based upstream turns them into
 * that upstream's initialize, so a member of the wrong type has to be refused here (400 / −32602
 * naming it): the upstream would refuse the initialize and every request would fail with 502.
 */

export const META_PROTOCOL_VERSION = 'io.modelcontextprotocol/protocolVersion';
export const META_CLIENT_CAPABILITIES = 'io.modelcontextprotocol/clientCapabilities';
export const META_CLIENT_INFO = 'io.modelcontextprotocol/clientInfo';
export const META_LOG_LEVEL = 'io.modelcontextprotocol/logLevel';

/** Schema `LoggingLevel` (RFC 5424 severities). */
const LOGGING_LEVELS = new Set([
  'debug',
  'info',
  'notice',
  'warning',
  'error',
  'critical',
  'alert',
  'emergency',
]);

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** `name` is absent or of `type`. */
function optional(o: Json, name: string, type: 'string' | 'object'): boolean {
  const v = o[name];
  return v === undefined || (type === 'object' ? isObject(v) : typeof v === type);
}

/** An object whose members are all objects (`experimental`, `extensions`). */
function objectOfObjects(v: unknown): boolean {
  if (!isObject(v)) return false;
  for (const k in v) if (!isObject(v[k])) return false;
  return true;
}

/**
 * Why `meta` is not a valid 2026-07-28 request `_meta`, naming the member; undefined when it is.
 * Members other than these four are left alone (`_meta` is an open set).
 */
export function checkRequestMeta(meta: Json | undefined): string | undefined {
  if (meta === undefined)
    return `_meta must carry "${META_PROTOCOL_VERSION}" and "${META_CLIENT_CAPABILITIES}"`;
  const version = meta[META_PROTOCOL_VERSION];
  if (version === undefined) return `_meta must carry "${META_PROTOCOL_VERSION}"`;
  if (typeof version !== 'string') return `_meta["${META_PROTOCOL_VERSION}"] must be a string`;
  const caps = meta[META_CLIENT_CAPABILITIES];
  if (caps === undefined) return `_meta must carry "${META_CLIENT_CAPABILITIES}"`;
  const capsReason = checkClientCapabilities(caps);
  if (capsReason !== undefined) return `_meta["${META_CLIENT_CAPABILITIES}"]${capsReason}`;
  const info = meta[META_CLIENT_INFO];
  if (info !== undefined) {
    const infoReason = checkImplementation(info);
    if (infoReason !== undefined) return `_meta["${META_CLIENT_INFO}"]${infoReason}`;
  }
  const level = meta[META_LOG_LEVEL];
  if (level !== undefined && !(typeof level === 'string' && LOGGING_LEVELS.has(level))) {
    return `_meta["${META_LOG_LEVEL}"] must be one of ${[...LOGGING_LEVELS].join(', ')}`;
  }
  return undefined;
}

/** Schema `ClientCapabilities`: the members it defines, each of its type; others are free. */
function checkClientCapabilities(caps: unknown): string | undefined {
  if (!isObject(caps)) return ' must be an object';
  for (const name of ['experimental', 'extensions']) {
    if (caps[name] !== undefined && !objectOfObjects(caps[name]))
      return `.${name} must be an object of objects`;
  }
  if (!optional(caps, 'roots', 'object')) return '.roots must be an object';
  const sampling = caps.sampling;
  if (sampling !== undefined) {
    if (!isObject(sampling)) return '.sampling must be an object';
    if (!optional(sampling, 'context', 'object') || !optional(sampling, 'tools', 'object')) {
      return '.sampling.context and .sampling.tools must be objects';
    }
  }
  const elicitation = caps.elicitation;
  if (elicitation !== undefined) {
    if (!isObject(elicitation)) return '.elicitation must be an object';
    if (!optional(elicitation, 'form', 'object') || !optional(elicitation, 'url', 'object')) {
      return '.elicitation.form and .elicitation.url must be objects';
    }
  }
  return undefined;
}

/** Schema `Implementation`: string `name` and `version`; the optional members of their types. */
function checkImplementation(info: unknown): string | undefined {
  if (!isObject(info) || typeof info.name !== 'string' || typeof info.version !== 'string') {
    return ' must be an object with string name and version';
  }
  for (const name of ['title', 'description', 'websiteUrl']) {
    if (!optional(info, name, 'string')) return `.${name} must be a string`;
  }
  const icons = info.icons;
  if (icons !== undefined) {
    if (!Array.isArray(icons)) return '.icons must be an array';
    for (const icon of icons) {
      if (!isObject(icon) || typeof icon.src !== 'string')
        return '.icons[] must be objects with a string src';
      if (!optional(icon, 'mimeType', 'string')) return '.icons[].mimeType must be a string';
      const sizes = icon.sizes;
      if (sizes !== undefined && !(Array.isArray(sizes) && sizes.every((s) => typeof s === 'string'))) {
        return '.icons[].sizes must be an array of strings';
      }
      if (icon.theme !== undefined && icon.theme !== 'light' && icon.theme !== 'dark') {
        return '.icons[].theme must be "light" or "dark"';
      }
    }
  }
  return undefined;
}
