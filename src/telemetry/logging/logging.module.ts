import { Global, Inject, Module, type OnModuleInit } from '@nestjs/common';
import { PinoLogger } from 'nestjs-pino';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { GatewayLogger } from './gateway-logger';
import { LogLevels } from './log-levels';

/** Per-module log levels (LOG_LEVELS, live through /admin/log-levels) over nestjs-pino. */
@Global()
@Module({
  providers: [GatewayLogger],
  exports: [GatewayLogger],
})
export class LoggingModule implements OnModuleInit {
  constructor(@Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig) {
    // Before any module logs: levels come from the configuration of this gateway.
    LogLevels.configure(config.logLevel, config.logLevels);
  }

  onModuleInit(): void {
    LogLevels.attach(PinoLogger.root);
  }
}
