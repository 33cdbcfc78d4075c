import type { ServerResponse } from 'node:http';
import {
  ErrorCode,
  errorResponse,
  type JsonRpcFailure,
  type JsonRpcId,
} from '../../../libs/protocol/src/jsonrpc';
import type { Refusal } from '../../core/refusal';

/** Writes a JSON-RPC error as a complete HTTP response on a raw Node response. */
export function sendJsonRpcError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  options: { id?: JsonRpcId | null; data?: unknown; headers?: Record<string, string> } = {},
): void {
  sendJson(res, status, errorResponse(options.id ?? null, code, message, options.data), options.headers);
}

/**
 * A refusal (src/core/refusal.ts) as the HTTP transports say it: its status, its headers and a
 * JSON-RPC error body (`id`: the refused request's, when one request was refused).
 */
export function sendRefusal(res: ServerResponse, refusal: Refusal, id: JsonRpcId | null = null): void {
  sendJsonRpcError(res, refusal.status, refusal.code, refusal.message, {
    id,
    data: refusal.data,
    headers: refusal.headers,
  });
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: JsonRpcFailure | unknown,
  headers?: Record<string, string>,
): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/** Empty response with a status (202 Accepted, 405 with Allow, …). */
export function sendStatus(res: ServerResponse, status: number, headers?: Record<string, string>): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, headers);
  res.end();
}

/** True when the Accept header lists `type` (or a wildcard covering it). */
export function accepts(accept: string | undefined, type: string): boolean {
  if (!accept) return false;
  const [major] = type.split('/');
  for (const part of accept.split(',')) {
    const media = part.split(';')[0].trim().toLowerCase();
    if (media === type || media === '*/*' || media === `${major}/*`) return true;
  }
  return false;
}

/** The media type of a Content-Type header, lower-cased, without parameters. */
export function mediaType(contentType: string | undefined): string | undefined {
  // What every MCP client sends: no need to split, trim and lower-case a copy per request.
  if (contentType === 'application/json') return contentType;
  return contentType?.split(';')[0].trim().toLowerCase();
}

/**
 * 429 for a session over its in-flight bound: Retry-After for HTTP clients, and the same
 * wait as `retryAfterMs` in the JSON-RPC error for MCP clients.
 */
export function sendOverloaded(res: ServerResponse, retryAfterMs: number, id: JsonRpcId | null): void {
  sendJsonRpcError(res, 429, ErrorCode.Overloaded, 'Too many requests in flight for this session', {
    id,
    data: { retryAfterMs },
    headers: { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) },
  });
}
