import { Module } from '@nestjs/common';
import { ReplicaStates } from './replica-states';
import { Router } from './router.service';

/**
 * Services, replicas and their hash rings. ReplicaStates is exported for the modules that mark
 * replicas unhealthy (health checks, breakers). The admin API and the watched gateway.yaml that
 * change them live above, in src/ops/admin.
 */
@Module({
  providers: [ReplicaStates, Router],
  exports: [Router, ReplicaStates],
})
export class RoutingModule {}
