import { Global, Module } from '@nestjs/common';
import { UpstreamFactory } from '../upstream/upstream.factory';
import { PoolManager } from './pool-manager.service';
import { S3PoolListener } from './s3-pool.listener';

@Global()
@Module({
  providers: [UpstreamFactory, PoolManager, S3PoolListener],
  exports: [PoolManager, UpstreamFactory],
})
export class PoolModule {}
