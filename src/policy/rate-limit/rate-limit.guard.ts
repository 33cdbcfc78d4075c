import { HttpException, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ANONYMOUS_CLIENT } from '../../core/client-id';
import { MessagePolicy } from '../message-policy';

/**
 * The rate limit of the Nest controllers (the admin API), from the buckets the MCP transports
 * take from: the caller's address bucket, the one anonymous MCP clients from that address share.
 * Not a client id: nothing here proves one (the admin token names no client), and a claimed
 * `X-MCP-Client-Id` would let any caller empty that client's MCP budget, or dodge the limit by
 * naming a new id per request. A refusal is 429 with Retry-After and the RateLimit headers.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  constructor(private readonly policy: MessagePolicy) {}

  canActivate(context: ExecutionContext): boolean {
    const http = context.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const headers = request.headers;
    const refusal = this.policy.take(
      ANONYMOUS_CLIENT,
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
