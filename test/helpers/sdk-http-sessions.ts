import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';

/**
 * The SDK's stateful Streamable HTTP server as a test upstream needs it: each request goes to the
 * session its `Mcp-Session-Id` names, and a request without a known one (an initialize) gets a
 * new session served by `newServer()`.
 */
export class SdkHttpSessions {
  private readonly transports = new Map<string, StreamableHTTPServerTransport>();

  constructor(private readonly newServer: () => McpServer) {}

  /** Whether a session with this id is live here (a restarted server knows none). */
  has(sessionId: string): boolean {
    return this.transports.has(sessionId);
  }

  async handle(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    const sid = req.headers['mcp-session-id'];
    let transport = typeof sid === 'string' ? this.transports.get(sid) : undefined;
    if (!transport) {
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        onsessioninitialized: (id) => {
          this.transports.set(id, created);
        },
      });
      transport = created;
      await this.newServer().connect(transport);
    }
    await transport.handleRequest(req, res, body);
  }
}
