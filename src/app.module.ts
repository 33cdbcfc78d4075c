import { Module, type DynamicModule } from '@nestjs/common';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { LoggerModule } from 'nestjs-pino';
import { ConfigModule } from './config/config.module';
import type { GatewayConfig } from './config/gateway-config';
import { HealthController } from './observability/health.controller';
import { MonitoringModule } from './observability/monitoring.module';
import { ObservabilityModule } from './observability/observability.module';
import { PoolModule } from './pool/pool.module';
import { RoutingModule } from './routing/routing.module';
import { SessionModule } from './session/session.module';
import { TRANSPORT_MODULES } from './transports';
import { VsmModule } from './vsm/vsm.module';

/** Imports the feature modules; nothing else. */
@Module({})
export class AppModule {
  static forRoot(config: GatewayConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggerModule.forRoot({
          pinoHttp: {
            level: config.logLevel,
            // Per-request access logs would cost more than the forwarding itself; errors are logged where they happen.
            autoLogging: false,
            quietReqLogger: true,
          },
          // The request logger (a child logger with a correlation id, kept in AsyncLocalStorage) only for
          // the Nest controllers, where request-scoped logs happen. The MCP transports' routes (/mcp,
          // /sse, /messages) are the hot path: there pino-http cost ~11 % of the gateway's CPU even at
          // LOG_LEVEL=warn, and what they log names the session and client instead.
          forRoutes: [HealthController],
        }),
        EventEmitterModule.forRoot({ wildcard: false, maxListeners: 50 }),
        VsmModule,
        ObservabilityModule,
        RoutingModule,
        PoolModule,
        SessionModule,
        ...TRANSPORT_MODULES,
        MonitoringModule,
      ],
    };
  }
}
