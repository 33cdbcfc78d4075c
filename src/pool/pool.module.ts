import { Module } from '@nestjs/common';
import { RoutingModule } from '../routing/routing.module';
import { UpstreamFactory } from '../upstream/upstream.factory';
import { PoolManager } from './pool-manager.service';
import { PoolReadout } from './pool-readout';
import { S3PoolListener } from './s3-pool.listener';

/** Upstream ports, connections, pools and replica breakers, on the routing table's replicas. */
@Module({
  imports: [RoutingModule],
  providers: [UpstreamFactory, PoolManager, S3PoolListener, PoolReadout],
  exports: [PoolManager, UpstreamFactory],
})
export class PoolModule {}
