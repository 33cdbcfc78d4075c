import { HttpException, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { clientIdFrom } from '../../transports/http/client-identity';
import { MessagePolicy } from '../message-policy';

/**
 * The per-client rate limit for Nest controllers (admin API, dashboard, metrics): the same
 * buckets the MCP transports take from, so a client's admin calls and MCP requests share one
 * budget. A refusal is 429 with Retry-After and the RateLimit / RateLimit-Policy headers.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  constructor(private readonly policy: MessagePolicy) {}

  canActivate(context: ExecutionContext): boolean {
    const http = context.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const headers = request.headers;
    const refusal = this.policy.take(
      clientIdFrom(headers),
      'admin',
      this.policy.addressOf(request.raw.socket.remoteAddress, headers),
    );
    if (refusal === undefined) return true;
    const reply = http.getResponse<FastifyReply>();
    for (const [name, value] of Object.entries(refusal.headers ?? {})) void reply.header(name, value);
    throw new HttpException(
      { statusCode: 429, message: refusal.message, retryAfterMs: refusal.retryAfterMs },
      429,
    );
  }
}
