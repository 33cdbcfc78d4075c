import { createHash, timingSafeEqual } from 'node:crypto';
import {
  Inject,
  Injectable,
  UnauthorizedException,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';

/**
 * /metrics asks for the admin token (Authorization: Bearer) when one is configured and is open
 * otherwise, so a Prometheus inside the deployment scrapes without set-up. Compared as SHA-256
 * digests with timingSafeEqual (constant time whatever the length sent), as the admin API does.
 */
@Injectable()
export class MetricsTokenGuard implements CanActivate {
  private readonly digest: Buffer | undefined;

  constructor(@Inject(GATEWAY_CONFIG) config: GatewayConfig) {
    this.digest = config.admin.token === undefined ? undefined : sha256(config.admin.token);
  }

  canActivate(context: ExecutionContext): boolean {
    if (!this.digest) return true;
    const http = context.switchToHttp();
    const header = http.getRequest<FastifyRequest>().headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match && timingSafeEqual(sha256(match[1]), this.digest)) return true;
    void http.getResponse<FastifyReply>().header('www-authenticate', 'Bearer realm="mcp-gateway-metrics"');
    throw new UnauthorizedException(
      match ? 'invalid admin token' : 'admin token required (Authorization: Bearer …)',
    );
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
