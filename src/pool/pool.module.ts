import { Global, Module } from '@nestjs/common';
import { UpstreamFactory } from '../upstream/upstream.factory';
import { PoolManager } from './pool-manager.service';

@Global()
@Module({ providers: [UpstreamFactory, PoolManager], exports: [PoolManager, UpstreamFactory] })
export class PoolModule {}
