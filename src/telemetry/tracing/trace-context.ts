import { ROOT_CONTEXT, type Context } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

/** W3C trace context as it travels: HTTP headers or `params._meta` (SEP-414). */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
}

const propagator = new W3CTraceContextPropagator();

const carrierGetter = {
  keys: (c: TraceCarrier) => Object.keys(c),
  get: (c: TraceCarrier, key: string) => {
    const v = (c as Record<string, unknown>)[key];
    return typeof v === 'string' ? v : undefined;
  },
};

/** The parent context a caller's `traceparent` names; the root context when it names none (or is malformed). */
export function parentContext(traceparent: unknown, tracestate: unknown): Context {
  if (typeof traceparent !== 'string') return ROOT_CONTEXT;
  const carrier: TraceCarrier = { traceparent };
  if (typeof tracestate === 'string') carrier.tracestate = tracestate;
  return propagator.extract(ROOT_CONTEXT, carrier, carrierGetter);
}

/** The first value of an HTTP header (Node gives arrays for repeated ones). */
export function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
