import { Module } from '@nestjs/common';
import { AdminTokenGuard } from './admin-token.guard';
import { AdminController } from './admin.controller';
import { ConfigReloadService } from './config-reload.service';
import { LogLevelsController } from './log-levels.controller';

/**
 * The admin API and the watched gateway.yaml: operations on top of routing (services, replicas),
 * policy (clients) and logging (levels). Every route carries the same guards (`@AdminRoute()`).
 */
@Module({
  controllers: [AdminController, LogLevelsController],
  providers: [ConfigReloadService, AdminTokenGuard],
})
export class AdminModule {}
