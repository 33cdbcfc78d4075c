import { Global, Module } from '@nestjs/common';
import { UpstreamFactory } from '../upstream/upstream.factory';
import { PoolManager } from './pool-manager.service';
import { PoolReadout } from './pool-readout';
import { S3PoolListener } from './s3-pool.listener';

@Global()
@Module({
  providers: [UpstreamFactory, PoolManager, S3PoolListener, PoolReadout],
  exports: [PoolManager, UpstreamFactory],
})
export class PoolModule {}
