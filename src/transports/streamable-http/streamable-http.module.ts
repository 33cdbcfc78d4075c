import { Module } from '@nestjs/common';
import { MessagePolicyModule } from '../../policy/message-policy.module';
import { PolicyModule } from '../../policy/policy.module';
import { SessionModule } from '../../session/session.module';
import { StreamableHttpRoutes } from './streamable-http.routes';

/** Streamable HTTP client transport: POST/GET/DELETE on /mcp and /mcp/:service (MCP 2025-03-26 … 2026-07-28). */
@Module({
  imports: [SessionModule, PolicyModule, MessagePolicyModule],
  providers: [StreamableHttpRoutes],
  exports: [StreamableHttpRoutes],
})
export class StreamableHttpModule {}
