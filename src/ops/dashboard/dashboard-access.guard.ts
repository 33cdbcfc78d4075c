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
import { GATEWAY_CONFIG } from '../../config/config.module';
import type { GatewayConfig } from '../../config/gateway-config';

/** The cookie that carries the admin token for a browser after `?token=` was given once. */
export const DASHBOARD_COOKIE = 'mcp_gateway_dashboard';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/**
 * /dashboard takes the admin token when one is set: `Authorization: Bearer`, the dashboard cookie,
 * or `?token=` (the page then sets the cookie and drops the token from the address). Without a
 * token it is open on a loopback bind (or with DASHBOARD_OPEN) and does not exist otherwise.
 */
@Injectable()
export class DashboardAccessGuard implements CanActivate {
  private readonly digest: Buffer | undefined;
  private readonly openWithoutToken: boolean;

  constructor(@Inject(GATEWAY_CONFIG) config: GatewayConfig) {
    this.digest = config.admin.token === undefined ? undefined : sha256(config.admin.token);
    this.openWithoutToken = config.dashboard.open || LOOPBACK.has(config.host);
  }

  canActivate(context: ExecutionContext): boolean {
    if (!this.digest) {
      if (this.openWithoutToken) return true;
      throw new NotFoundException();
    }
    const http = context.switchToHttp();
    const req = http.getRequest<FastifyRequest>();
    // Every candidate is compared (no early return): which one holds decides what the page does
    // with `?token=` — only a valid one may become the cookie.
    let granted = false;
    for (const [source, candidate] of tokensOf(req)) {
      if (!timingSafeEqual(sha256(candidate), this.digest)) continue;
      granted = true;
      if (source === 'query') (req as TokenCheckedRequest)[QUERY_TOKEN_VALID] = true;
    }
    if (granted) return true;
    void http.getResponse<FastifyReply>().header('www-authenticate', 'Bearer realm="mcp-gateway-admin"');
    throw new UnauthorizedException('admin token required (Authorization: Bearer …, or /dashboard?token=…)');
  }
}

const QUERY_TOKEN_VALID = Symbol('dashboard ?token= is the admin token');
type TokenCheckedRequest = FastifyRequest & { [QUERY_TOKEN_VALID]?: true };

/**
 * Whether the request's `?token=` is the admin token itself (the guard ran and said so), not
 * merely sent alongside a valid cookie or header: only then may the page store it as the cookie.
 */
export function queryTokenValid(req: FastifyRequest): boolean {
  return (req as TokenCheckedRequest)[QUERY_TOKEN_VALID] === true;
}

function tokensOf(req: FastifyRequest): Array<['header' | 'cookie' | 'query', string]> {
  const out: Array<['header' | 'cookie' | 'query', string]> = [];
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (match) out.push(['header', match[1]]);
  const cookie = cookieValue(req.headers.cookie, DASHBOARD_COOKIE);
  if (cookie !== undefined) out.push(['cookie', cookie]);
  const query = (req.query as Record<string, unknown> | undefined)?.token;
  if (typeof query === 'string') out.push(['query', query]);
  return out;
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
