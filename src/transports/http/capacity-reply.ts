import type { ServerResponse } from 'node:http';
import { ErrorCode } from '../../../libs/protocol/src';
import { AdmissionRefusedError } from '../../session/session-capacity';
import { sendJsonRpcError } from './http-reply';

/**
 * Answers 503 with Retry-After when `err` refuses admission (descriptor capacity, a client
 * transport's open breaker or connection cap) and returns true;
 * false for any other error (the caller rethrows it to its error boundary).
 */
export function refusedForCapacity(
  res: ServerResponse,
  err: unknown,
  metrics: { error(kind: string): void },
): boolean {
  if (!(err instanceof AdmissionRefusedError)) return false;
  metrics.error(err.code);
  sendAdmissionRefused(res, err);
  return true;
}

/** 503 with Retry-After (whole seconds, at least 1) and JSON-RPC −31003 carrying retryAfterMs. */
export function sendAdmissionRefused(res: ServerResponse, err: AdmissionRefusedError): void {
  sendJsonRpcError(res, 503, ErrorCode.Overloaded, err.message, {
    data: { retryAfterMs: err.retryAfterMs },
    headers: { 'retry-after': String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))) },
  });
}
