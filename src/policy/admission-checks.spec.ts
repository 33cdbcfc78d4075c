import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Global, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { ConfigModule } from '../config/config.module';
import { loadConfig } from '../config/load-config';
import { GatewayMetrics } from '../telemetry/gateway-metrics.service';
import { VsmModule } from '../vsm/vsm.module';
import type { AdmissionCheck, AdmissionContext } from './admission';
import { isRefusal, refusal } from './identity';
import { ADMISSION_CHECKS, AdmissionService, PolicyModule } from './policy.module';

@ADMISSION_CHECKS()
@Injectable()
class NoMallory implements AdmissionCheck {
  readonly name = 'no-mallory';
  check({ identity }: AdmissionContext) {
    return identity.clientId === 'mallory' ? refusal(403, 'no_mallory', 'not you') : undefined;
  }
}

@Module({ providers: [NoMallory] })
class TeamModule {}

/** Only the metrics (ObservabilityModule also brings health checks that need the session layer). */
@Global()
@Module({ providers: [GatewayMetrics], exports: [GatewayMetrics] })
class MetricsOnly {}

describe('ADMISSION_CHECKS', () => {
  test("a check provided from a team's own module is found and run by Admission", async () => {
    const config = loadConfig({ LOG_LEVEL: 'silent' });
    @Module({
      imports: [
        ConfigModule.forRoot(config),
        EventEmitterModule.forRoot(),
        VsmModule,
        MetricsOnly,
        PolicyModule,
        TeamModule,
      ],
    })
    class Root {}
    const app = await NestFactory.createApplicationContext(Root, { logger: false, abortOnError: false });
    try {
      const admission = app.get(AdmissionService);
      const ask = (id: string) =>
        admission.admit({ transport: 'ws', headers: { 'x-mcp-client-id': id }, socket: undefined });
      const refused = await ask('mallory');
      assert.ok(isRefusal(refused));
      assert.equal(refused.reason, 'no_mallory');
      assert.ok(!isRefusal(await ask('alice')));
    } finally {
      await app.close();
    }
  });
});
