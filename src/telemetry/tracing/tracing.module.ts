import { Global, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { TracingInterceptor } from './tracing.interceptor';
import { TracingService } from './tracing.service';

/** OpenTelemetry: the SDK (when configured) and the interceptor on every Nest controller. */
@Global()
@Module({
  providers: [TracingService, { provide: APP_INTERCEPTOR, useClass: TracingInterceptor }],
  exports: [TracingService],
})
export class TracingModule {}
