import { applyDecorators, UseGuards, UseInterceptors } from '@nestjs/common';
import { AdminPolicyGuard } from '../../policy/policy.module';
import { RateLimitGuard } from '../../policy/rate-limit/rate-limit.guard';
import { AdminAuditInterceptor } from './admin-audit.interceptor';
import { AdminTokenGuard } from './admin-token.guard';

/**
 * The one guard set of every admin controller, in this order: the caller address's rate limit
 * (before the token, so guessing tokens is rate limited too), the admin token, then S5
 * (`check_compliance`, and `verify_identity` before a change); every change is audited. A
 * controller under /admin uses this and nothing else: test/admin-guards.test.ts finds every
 * admin route and checks each one.
 */
export const AdminRoute = (): ClassDecorator & MethodDecorator =>
  applyDecorators(
    UseGuards(RateLimitGuard, AdminTokenGuard, AdminPolicyGuard),
    UseInterceptors(AdminAuditInterceptor),
  );
