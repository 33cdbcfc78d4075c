/**
 * JSON-RPC 2.0 message types and a strict-but-cheap shape check.
 *
 * The gateway forwards messages untouched wherever it can, so parsing here only
 * classifies a message (request, notification, response) and validates the fields a
 * forwarder relies on; params and results are never walked.
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

/**
 * Parses a body that holds one JSON-RPC message or (where the caller allows it) a batch.
 * Errors come back as ready-to-send JSON-RPC error responses: −32700 for bad JSON,
 * −32600 for a wrong shape.
 */
export function parseJsonRpc(text: string): ParseResult {
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

export function classifyParsed(value: unknown): ParseResult {
  if (Array.isArray(value)) {
    if (value.length === 0) {
      return {
        ok: false,
        error: errorResponse(null, ErrorCode.InvalidRequest, 'Invalid Request: empty batch'),
      };
    }
    for (let i = 0; i < value.length; i++) {
      const reason = checkShape(value[i]);
      if (reason) return { ok: false, error: invalid(value[i], `batch item ${i}: ${reason}`) };
    }
    return { ok: true, messages: value as JsonRpcMessage[], batch: true };
  }
  const reason = checkShape(value);
  if (reason) return { ok: false, error: invalid(value, reason) };
  return { ok: true, messages: [value as JsonRpcMessage], batch: false };
}

function invalid(value: unknown, reason: string): JsonRpcFailure {
  const id = value && typeof value === 'object' ? (value as { id?: unknown }).id : undefined;
  const safeId = typeof id === 'string' || typeof id === 'number' ? id : null;
  return errorResponse(safeId, ErrorCode.InvalidRequest, `Invalid Request: ${reason}`);
}
