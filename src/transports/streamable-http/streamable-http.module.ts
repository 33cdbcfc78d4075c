import { Module } from '@nestjs/common';
import { StreamableHttpRoutes } from './streamable-http.routes';

/** Streamable HTTP client transport: POST/GET/DELETE on /mcp and /mcp/:service (MCP 2025-03-26 … 2026-07-28). */
@Module({
  providers: [StreamableHttpRoutes],
  exports: [StreamableHttpRoutes],
})
export class StreamableHttpModule {}
