/**
 * JSON-RPC 2.0 message types and a strict-but-cheap shape check.
 *
 * The gateway forwards messages untouched wherever it can, so parsing here only
 * classifies a message (request, notification, response) and validates the fields a
 * forwarder relies on plus what MCP requires of their shape (ids, params, `_meta`); params
 * and results are never walked, and nesting depth is bounded on the text before parsing.
 */

export type JsonRpcId = string | number;

export interface JsonRpcRequest {
  jsonrpc: '2.0';
  id: JsonRpcId;
  method: string;
  params?: Record<string, unknown> | unknown[];
}

export interface JsonRpcNotification {
  jsonrpc: '2.0';
  method: string;
  params?: Record<string, unknown> | unknown[];
}

export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export interface JsonRpcSuccess {
  jsonrpc: '2.0';
  id: JsonRpcId;
  result: unknown;
}

export interface JsonRpcFailure {
  jsonrpc: '2.0';
  id: JsonRpcId | null;
  error: JsonRpcErrorObject;
}

export type JsonRpcResponse = JsonRpcSuccess | JsonRpcFailure;
export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse;

/** Standard JSON-RPC codes plus the MCP and gateway-specific ones the gateway emits. */
export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** MCP 2026-07-28: an Mcp-* routing header disagrees with the body. */
  HeaderMismatch: -32020,
  /** MCP 2026-07-28: the request needs a client capability the client did not declare. */
  MissingClientCapability: -32021,
  /** MCP 2026-07-28: the protocol version is not supported. */
  UnsupportedProtocolVersion: -32022,
  // Gateway codes live outside −32768…−32000, which JSON-RPC and MCP reserve for their own errors.
  /** Gateway: no upstream replica could be reached. */
  UpstreamUnavailable: -31001,
  /** Gateway: the upstream did not answer in time. */
  UpstreamTimeout: -31002,
  /** Gateway: too many requests in flight for this session; data.retryAfterMs says when to retry. */
  Overloaded: -31003,
  /** Gateway: the client exceeded its rate limit; data.retryAfterMs says when to retry. */
  RateLimited: -31004,
  /** Gateway: the session is unknown, expired or closed. */
  SessionNotFound: -31005,
  /** Gateway: a resume point is older than what the session still holds. */
  ResumeUnavailable: -31006,
  /** Gateway: a transport switch was refused (oscillation guard). */
  TransportSwitchRefused: -31007,
  /** Gateway: authentication failed. */
  Unauthorized: -31008,
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export function isRequest(m: JsonRpcMessage): m is JsonRpcRequest {
  return (m as JsonRpcRequest).method !== undefined && (m as JsonRpcRequest).id !== undefined;
}

export function isNotification(m: JsonRpcMessage): m is JsonRpcNotification {
  return (m as JsonRpcRequest).method !== undefined && (m as JsonRpcRequest).id === undefined;
}

export function isResponse(m: JsonRpcMessage): m is JsonRpcResponse {
  return (m as JsonRpcRequest).method === undefined;
}

export function errorResponse(
  id: JsonRpcId | null,
  code: number,
  message: string,
  data?: unknown,
): JsonRpcFailure {
  const error: JsonRpcErrorObject = data === undefined ? { code, message } : { code, message, data };
  return { jsonrpc: '2.0', id, error };
}

/** A key that keeps `1` and `"1"` apart: ids are opaque and must round-trip exactly. */
export function idKey(id: JsonRpcId): string {
  return typeof id === 'number' ? `n${id}` : `s${id}`;
}

export type ParseResult =
  { ok: true; messages: JsonRpcMessage[]; batch: boolean } | { ok: false; error: JsonRpcFailure };

/**
 * Nesting depth accepted in a client message by default (a batch counts as one level). MCP
 * messages need a handful; JSON.stringify and every recursive walk overflow the stack at a few
 * thousand, so a bound checked once at parse time keeps them all safe.
 */
export const DEFAULT_MAX_JSON_DEPTH = 64;

/** Validates one already-parsed JSON value as a JSON-RPC 2.0 message; returns a reason when it is not. */
export function checkShape(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'message must be an object';
  const m = value as Record<string, unknown>;
  if (m.jsonrpc !== '2.0') return 'jsonrpc must be "2.0"';
  const id = m.id;
  const hasId = id !== undefined;
  if (hasId && id !== null && typeof id !== 'string' && !(typeof id === 'number' && Number.isFinite(id))) {
    return 'id must be a string or a number';
  }
  if (m.method !== undefined) {
    if (typeof m.method !== 'string' || m.method.length === 0) return 'method must be a non-empty string';
    if (hasId && id === null) return 'request id must not be null';
    if (m.params !== undefined && (m.params === null || typeof m.params !== 'object')) {
      return 'params must be an object or an array';
    }
    return undefined;
  }
  const hasResult = 'result' in m;
  const hasError = 'error' in m;
  if (hasResult === hasError) return 'a message needs a method, or exactly one of result and error';
  if (!hasId) return 'a response needs an id';
  if (hasError) {
    const e = m.error as Record<string, unknown> | null;
    if (!e || typeof e !== 'object' || typeof e.code !== 'number' || typeof e.message !== 'string') {
      return 'error must have a numeric code and a string message';
    }
  }
  return undefined;
}

/** Why a client message is refused: the JSON-RPC code to answer with, and the reason. */
export interface Refusal {
  code: number;
  reason: string;
}

/** The members JSON-RPC 2.0 defines for a request or notification, and for a response. */
const REQUEST_MEMBERS = new Set(['jsonrpc', 'id', 'method', 'params']);
const RESPONSE_MEMBERS = new Set(['jsonrpc', 'id', 'result', 'error']);

/**
 * What MCP allows of a message a client sends, beyond the JSON-RPC envelope ({@link checkShape}):
 * only the members JSON-RPC 2.0 defines (the SDK's servers parse strictly: a request that also
 * carries `result`, or any other member, is dropped unanswered), ids are strings or integers (MCP schema `RequestId`; a number JavaScript cannot hold exactly
 * would come back as a different id), params is an object (MCP never uses positional params),
 * `params._meta`, when present, is an object, and its `progressToken` a string or an integer, held
 * exactly (MCP schema `ProgressToken`; 1e400 parses to Infinity, which JSON.stringify sends as
 * null). No upstream answers anything else, so such a request would only wait for its timeout
 * while holding an in-flight slot.
 */
export function checkClientMessage(value: unknown): Refusal | undefined {
  const reason = checkShape(value);
  if (reason !== undefined) return { code: ErrorCode.InvalidRequest, reason };
  const m = value as Record<string, unknown>;
  const hasMethod = m.method !== undefined;
  const members = hasMethod ? REQUEST_MEMBERS : RESPONSE_MEMBERS;
  for (const k in m) {
    if (!members.has(k)) {
      return {
        code: ErrorCode.InvalidRequest,
        reason: `"${k.slice(0, 40)}" is not a member of a JSON-RPC ${hasMethod ? 'request' : 'response'}`,
      };
    }
  }
  if (typeof m.id === 'number' && !Number.isSafeInteger(m.id)) {
    return {
      code: ErrorCode.InvalidRequest,
      reason: 'id must be a string or an integer between -(2^53-1) and 2^53-1',
    };
  }
  const params = m.params;
  if (params === undefined) return undefined;
  if (Array.isArray(params)) return { code: ErrorCode.InvalidParams, reason: 'params must be an object' };
  const meta = (params as Record<string, unknown>)._meta;
  if (meta === undefined) return undefined;
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) {
    return { code: ErrorCode.InvalidParams, reason: '_meta must be an object' };
  }
  const token = (meta as Record<string, unknown>).progressToken;
  if (token !== undefined && typeof token !== 'string' && !Number.isSafeInteger(token)) {
    return {
      code: ErrorCode.InvalidParams,
      reason: '_meta.progressToken must be a string or an integer between -(2^53-1) and 2^53-1',
    };
  }
  return undefined;
}

/**
 * True when `text` nests arrays and objects deeper than `maxDepth`, counting brackets outside
 * strings; malformed JSON is left to JSON.parse. Runs on every message, so the usual case costs
 * two native indexOf scans: depth cannot exceed the number of opening brackets.
 */
export function exceedsDepth(text: string, maxDepth: number): boolean {
  let openings = 0;
  for (let i = text.indexOf('{'); i !== -1; i = text.indexOf('{', i + 1)) {
    if (++openings > maxDepth) return scanDepth(text, maxDepth);
  }
  for (let i = text.indexOf('['); i !== -1; i = text.indexOf('[', i + 1)) {
    if (++openings > maxDepth) return scanDepth(text, maxDepth);
  }
  return false;
}

/** The exact check: one pass, strings skipped with indexOf. */
function scanDepth(text: string, maxDepth: number): boolean {
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > maxDepth) return true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    } else if (c === 0x22 /* " */) {
      // Jump to the closing quote: the first one not preceded by an odd number of backslashes.
      let end = i;
      for (;;) {
        end = text.indexOf('"', end + 1);
        if (end === -1) return false;
        let backslashes = 0;
        while (text.charCodeAt(end - 1 - backslashes) === 0x5c /* \ */) backslashes++;
        if ((backslashes & 1) === 0) break;
      }
      i = end;
    }
  }
  return false;
}

/**
 * Parses a body that holds one JSON-RPC message or (where the caller allows it) a batch, as a
 * client sent it. Errors come back as ready-to-send JSON-RPC error responses: −32700 for bad
 * JSON, −32600 for a wrong envelope, a bad id or nesting deeper than `maxDepth`, −32602 for
 * params or `_meta` of the wrong shape (see {@link checkClientMessage}).
 */
export function parseJsonRpc(text: string, maxDepth = DEFAULT_MAX_JSON_DEPTH): ParseResult {
  if (exceedsDepth(text, maxDepth)) {
    return {
      ok: false,
      error: errorResponse(
        null,
        ErrorCode.InvalidRequest,
        `Invalid Request: JSON nested deeper than ${maxDepth} levels`,
      ),
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return {
      ok: false,
      error: errorResponse(null, ErrorCode.ParseError, `Parse error: ${(err as Error).message}`),
    };
  }
  return classifyParsed(value);
}

/** Classifies and validates a parsed client body (see {@link parseJsonRpc}; depth is checked there). */
export function classifyParsed(value: unknown): ParseResult {
  if (Array.isArray(value)) {
    if (value.length === 0) {
      return {
        ok: false,
        error: errorResponse(null, ErrorCode.InvalidRequest, 'Invalid Request: empty batch'),
      };
    }
    for (let i = 0; i < value.length; i++) {
      const refusal = checkClientMessage(value[i]);
      if (refusal) return { ok: false, error: refused(value[i], refusal, `batch item ${i}: `) };
    }
    return { ok: true, messages: value as JsonRpcMessage[], batch: true };
  }
  const refusal = checkClientMessage(value);
  if (refusal) return { ok: false, error: refused(value, refusal, '') };
  return { ok: true, messages: [value as JsonRpcMessage], batch: false };
}

/** The metric kind a parse refusal is counted under. */
export function refusalKind(code: number): 'parse_error' | 'invalid_params' | 'invalid_request' {
  return code === ErrorCode.ParseError
    ? 'parse_error'
    : code === ErrorCode.InvalidParams
      ? 'invalid_params'
      : 'invalid_request';
}

function refused(value: unknown, refusal: Refusal, where: string): JsonRpcFailure {
  const id = value && typeof value === 'object' ? (value as { id?: unknown }).id : undefined;
  // Only an id the client can match: one MCP allows (an inexact number would not be its id).
  const safeId = typeof id === 'string' || (typeof id === 'number' && Number.isSafeInteger(id)) ? id : null;
  const label = refusal.code === ErrorCode.InvalidParams ? 'Invalid params' : 'Invalid Request';
  return errorResponse(safeId, refusal.code, `${label}: ${where}${refusal.reason}`);
}
