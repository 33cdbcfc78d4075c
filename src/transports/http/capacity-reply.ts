import type { ServerResponse } from 'node:http';
import { AdmissionRefusedError } from '../../core/refusal';
import { sendRefusal } from './http-reply';

/**
 * Answers 503 with Retry-After when `err` refuses admission (descriptor capacity, a client
 * transport's open breaker or connection cap, flood limits) and returns true;
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
  sendRefusal(res, err.refusal);
}
