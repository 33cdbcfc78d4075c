import { createHash, timingSafeEqual } from 'node:crypto';
import {
  Inject,
  Injectable,
  Logger,
  NotFoundException,
  UnauthorizedException,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';
import { adminAction } from './admin-audit.interceptor';

/**
 * The admin API's bearer token. Without a configured token the API does not exist (404, as any
 * unknown path), so a gateway never exposes it by accident. Tokens are compared as SHA-256 digests
 * with timingSafeEqual: constant time, whatever the length of the token sent. A refusal is an
 * Audit line (never the token sent); RateLimitGuard runs first, so they come at its pace.
 */
@Injectable()
export class AdminTokenGuard implements CanActivate {
  private readonly digest: Buffer | undefined;
  private readonly log = new Logger('Audit');

  constructor(@Inject(GATEWAY_CONFIG) config: GatewayConfig) {
    this.digest = config.admin.token === undefined ? undefined : sha256(config.admin.token);
  }

  canActivate(context: ExecutionContext): boolean {
    if (!this.digest) throw new NotFoundException();
    const http = context.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match && timingSafeEqual(sha256(match[1]), this.digest)) return true;
    this.log.warn(
      {
        event: 'refused',
        clientId: 'admin',
        action: adminAction(request),
        address: request.raw.socket?.remoteAddress,
        status: 401,
        reason: match ? 'admin_token_invalid' : 'admin_token_missing',
      },
      'Audit',
    );
    void http.getResponse<FastifyReply>().header('www-authenticate', 'Bearer realm="mcp-gateway-admin"');
    throw new UnauthorizedException(
      match ? 'invalid admin token' : 'admin token required (Authorization: Bearer …)',
    );
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
