import { randomUUID } from 'node:crypto';
import {
  HttpException,
  HttpStatus,
  Injectable,
  Logger,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { HTTP_CODE_METADATA } from '@nestjs/common/constants';
import type { FastifyRequest } from 'fastify';
import type { Observable } from 'rxjs';
import { tap } from 'rxjs/operators';

/** What S5 and the audit log call an admin request: `admin.PUT /admin/log-levels`. */
export function adminAction(request: FastifyRequest): string {
  return `admin.${request.method} ${(request.raw.url ?? '').split('?')[0]}`;
}

/** Reads change nothing: they are guarded like every admin route, but not audited one by one. */
function changes(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD';
}

/**
 * Every admin change leaves one Audit line (README "Security"): `admin_change` once the handler
 * applied it, `admin_change_refused` when the handler refused it (a bad body, an unknown
 * service). Refusals by the guards before it are audited by the guards themselves. The Audit
 * logger cannot be set below info (see log-levels.ts), so these lines cannot be switched off
 * through the API they record.
 */
@Injectable()
export class AdminAuditInterceptor implements NestInterceptor {
  private readonly log = new Logger('Audit');

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    if (!changes(request.method)) return next.handle();
    const fields = {
      correlationId: randomUUID(),
      clientId: 'admin',
      action: adminAction(request),
      address: request.raw.socket?.remoteAddress,
    };
    const declared = Reflect.getMetadata(HTTP_CODE_METADATA, context.getHandler()) as number | undefined;
    return next.handle().pipe(
      tap({
        complete: () =>
          this.log.log(
            {
              event: 'admin_change',
              ...fields,
              status: declared ?? (request.method === 'POST' ? HttpStatus.CREATED : HttpStatus.OK),
            },
            'Audit',
          ),
        error: (err: unknown) =>
          this.log.warn(
            {
              event: 'admin_change_refused',
              ...fields,
              status: err instanceof HttpException ? err.getStatus() : HttpStatus.INTERNAL_SERVER_ERROR,
              reason: err instanceof Error ? err.message.slice(0, 200) : 'error',
            },
            'Audit',
          ),
      }),
    );
  }
}
