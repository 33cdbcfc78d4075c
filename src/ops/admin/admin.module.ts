import { Module } from '@nestjs/common';
import { MessagePolicyModule } from '../../policy/message-policy.module';
import { PolicyModule } from '../../policy/policy.module';
import { RoutingModule } from '../../routing/routing.module';
import { AdminTokenGuard } from './admin-token.guard';
import { AdminController } from './admin.controller';
import { ConfigReloadService } from './config-reload.service';
import { LogLevelsController } from './log-levels.controller';

/**
 * The admin API and the watched gateway.yaml: operations on top of routing (services, replicas),
 * policy (clients) and logging (levels). Every route carries the same guards (`@AdminRoute()`).
 */
@Module({
  // RateLimitGuard and the config reload need the MessagePolicy, AdminPolicyGuard and the reload
  // the AdmissionService (API keys); the controller and the reload edit the routing table.
  imports: [RoutingModule, PolicyModule, MessagePolicyModule],
  controllers: [AdminController, LogLevelsController],
  providers: [ConfigReloadService, AdminTokenGuard],
})
export class AdminModule {}
