import { Module } from '@nestjs/common';
import { SessionModule } from '../../session/session.module';
import { FloodService } from './flood.service';

/** Connection and session flood protection (src/policy/flood); see README "Flood protection". */
@Module({ imports: [SessionModule], providers: [FloodService], exports: [FloodService] })
export class FloodModule {}
