import { Global, Module } from '@nestjs/common';
import { Router } from './router.service';

@Global()
@Module({ providers: [Router], exports: [Router] })
export class RoutingModule {}
