import { Module } from '@nestjs/common';
import { FloodService } from './flood.service';

/** Connection and session flood protection (src/policy/flood); see README "Flood protection". */
@Module({ providers: [FloodService], exports: [FloodService] })
export class FloodModule {}
