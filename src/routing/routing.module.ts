import { Global, Module } from '@nestjs/common';
import { AdminTokenGuard } from './admin-token.guard';
import { AdminController } from './admin.controller';
import { ConfigReloadService } from './config-reload.service';
import { ReplicaStates } from './replica-states';
import { Router } from './router.service';

/**
 * Services, replicas and their hash rings; the watched gateway.yaml; the admin API. ReplicaStates
 * is exported for the modules that mark replicas unhealthy (health checks, breakers).
 */
@Global()
@Module({
  controllers: [AdminController],
  providers: [ReplicaStates, Router, ConfigReloadService, AdminTokenGuard],
  exports: [Router, ReplicaStates],
})
export class RoutingModule {}
