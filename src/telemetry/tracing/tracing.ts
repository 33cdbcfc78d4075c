import { trace, type Tracer } from '@opentelemetry/api';

/**
 * The one switch the hot path reads. `enabled` is false unless an OTLP endpoint is configured
 * (TracingService turns it on at start-up): with it off, a message costs one boolean check —
 * no span, no context, no re-serialisation. Module state rather than an injected service
 * because sessions, ports and transports are plain objects outside Nest's container.
 */
export const Tracing: { enabled: boolean; tracer: Tracer } = {
  enabled: false,
  // The API's proxy tracer makes no-op spans until a provider is set; never used while disabled.
  tracer: trace.getTracer('mcp-gateway'),
};
