import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { trace } from '@opentelemetry/api';
import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { Tracing } from './tracing';

/**
 * Starts the OpenTelemetry SDK when an OTLP endpoint is configured, and only then: a tracer
 * provider with a batch processor exporting OTLP/HTTP (protobuf by default: it encodes a span in
 * about two thirds of the time JSON takes and sends less than half the bytes), ParentBased(TraceIdRatioBased)
 * sampling, `service.name` from the configuration. No auto-instrumentation: the gateway makes
 * its own spans (MCP semantic conventions) on the hot path and in TracingInterceptor, and
 * instrumented http/undici would double them and cost per message. The provider is not
 * registered globally, so several gateways in one process (the tests) do not fight over it.
 */
@Injectable()
export class TracingService implements OnModuleInit, OnApplicationShutdown {
  private readonly log = new Logger('Tracing');
  private provider: BasicTracerProvider | undefined = undefined;

  constructor(@Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig) {}

  onModuleInit(): void {
    const settings = this.config.tracing;
    if (!settings) return;
    const exporter =
      settings.protocol === 'http/json'
        ? new OtlpJsonExporter({ url: settings.tracesUrl })
        : new OtlpProtobufExporter({ url: settings.tracesUrl });
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': settings.serviceName }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sampleRatio) }),
      // Sized for a few thousand requests/s at ratio 1 (two spans each): a second of spans fits
      // the queue, and an export carries 1024 of them, not one HTTP request per 512.
      spanProcessors: [
        new BatchSpanProcessor(exporter, {
          maxQueueSize: settings.maxQueueSize,
          maxExportBatchSize: settings.maxExportBatchSize,
          scheduledDelayMillis: settings.scheduledDelayMs,
        }),
      ],
    });
    Tracing.tracer = this.provider.getTracer('mcp-gateway');
    Tracing.enabled = true;
    this.log.log(
      `tracing to ${settings.tracesUrl} (${settings.protocol}, sample ratio ${settings.sampleRatio})`,
    );
  }

  /** Spans still batched are exported before the process goes. */
  async onApplicationShutdown(): Promise<void> {
    const provider = this.provider;
    if (!provider) return;
    this.provider = undefined;
    Tracing.enabled = false;
    Tracing.tracer = trace.getTracer('mcp-gateway');
    try {
      await provider.shutdown();
    } catch (err) {
      this.log.warn(`could not export the last spans: ${(err as Error).message}`);
    }
  }

  /** Exports what is batched now (tests, and an operator's drain). */
  async flush(): Promise<void> {
    await this.provider?.forceFlush();
  }
}
