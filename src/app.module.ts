import { Module, type DynamicModule } from '@nestjs/common';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { LoggerModule } from 'nestjs-pino';
import type { DestinationStream } from 'pino';
import { ConfigModule } from './config/config.module';
import type { GatewayConfig } from './config/gateway-config';
import { HealthController } from './ops/health/health.controller';
import { MonitoringModule } from './ops/monitoring.module';
import { ObservabilityModule } from './ops/observability.module';
import { FloodModule } from './policy/flood/flood.module';
import { MessagePolicyModule } from './policy/message-policy.module';
import { PolicyModule } from './policy/policy.module';
import { logDestination, lowestLevel } from './telemetry/logging/log-destination';
import { LoggingModule } from './telemetry/logging/logging.module';
import { TelemetryModule } from './telemetry/telemetry.module';
import { TracingModule } from './telemetry/tracing/tracing.module';
import { PoolModule } from './pool/pool.module';
import { RoutingModule } from './routing/routing.module';
import { SessionModule } from './session/session.module';
import { TRANSPORT_MODULES } from './transports';
import { VsmModule } from './vsm/vsm.module';
import { AdminModule } from './ops/admin/admin.module';

/** Imports the feature modules; nothing else. */
@Module({})
export class AppModule {
  /** `logStream`: where log lines go instead of stdout (tests read them). */
  static forRoot(config: GatewayConfig, logStream?: DestinationStream): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggerModule.forRoot({
          pinoHttp: [
            {
              level: lowestLevel(config),
              // Per-request access logs would cost more than the forwarding itself; errors are logged where they happen.
              autoLogging: false,
              quietReqLogger: true,
            },
            logDestination(config, logStream),
          ],
          // The request logger (a child logger with a correlation id, kept in AsyncLocalStorage) only for
          // the Nest controllers, where request-scoped logs happen. The MCP transports' routes (/mcp,
          // /sse, /messages) are the hot path: there pino-http cost ~11 % of the gateway's CPU even at
          // LOG_LEVEL=warn, and what they log names the session and client instead.
          forRoutes: [HealthController],
        }),
        EventEmitterModule.forRoot({ wildcard: false, maxListeners: 50 }),
        TelemetryModule,
        VsmModule,
        ObservabilityModule,
        PolicyModule,
        MessagePolicyModule,
        TracingModule,
        LoggingModule,
        RoutingModule,
        PoolModule,
        SessionModule,
        FloodModule,
        ...TRANSPORT_MODULES,
        MonitoringModule,
        AdminModule,
      ],
    };
  }
}
