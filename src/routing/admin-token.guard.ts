import { createHash, timingSafeEqual } from 'node:crypto';
import {
  Inject,
  Injectable,
  NotFoundException,
  UnauthorizedException,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GATEWAY_CONFIG } from '../config/config.module';
import type { GatewayConfig } from '../config/gateway-config';

/**
 * The admin API's bearer token. Without a configured token the API does not exist (404, as any
 * unknown path), so a gateway never exposes it by accident. Tokens are compared as SHA-256 digests
 * with timingSafeEqual: constant time, whatever the length of the token sent.
 */
@Injectable()
export class AdminTokenGuard implements CanActivate {
  private readonly digest: Buffer | undefined;

  constructor(@Inject(GATEWAY_CONFIG) config: GatewayConfig) {
    this.digest = config.admin.token === undefined ? undefined : sha256(config.admin.token);
  }

  canActivate(context: ExecutionContext): boolean {
    if (!this.digest) throw new NotFoundException();
    const http = context.switchToHttp();
    const header = http.getRequest<FastifyRequest>().headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match && timingSafeEqual(sha256(match[1]), this.digest)) return true;
    void http.getResponse<FastifyReply>().header('www-authenticate', 'Bearer realm="mcp-gateway-admin"');
    throw new UnauthorizedException(
      match ? 'invalid admin token' : 'admin token required (Authorization: Bearer …)',
    );
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
