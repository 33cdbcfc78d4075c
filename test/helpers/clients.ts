import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { WebSocket } from 'ws';

/**
 * Node 20 has no global WebSocket and the SDK's WebSocket transport uses the global one.
 * This one behaves like a browser's: one task per message event. (With ws's default,
 * frames from one TCP read are dispatched back to back, and the SDK, which handles
 * notifications in a microtask but responses synchronously, would see a tool result
 * before the progress notification sent just ahead of it.)
 */
export class BrowserLikeWebSocket extends WebSocket {
  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols, { allowSynchronousEvents: false });
  }
}
// Set even where the runtime has its own (Node 22+: undici's), so every Node version runs the same client.
(globalThis as { WebSocket?: unknown }).WebSocket = BrowserLikeWebSocket;

/** The client transports one suite runs over. */
export type ClientTransportName = 'streamable' | 'sse' | 'ws';
export const CLIENT_TRANSPORTS: ClientTransportName[] = ['streamable', 'sse', 'ws'];

export const SAMPLED_TEXT = 'sampled through the gateway';

/** The gateway URL a transport connects to, for the default service or a named one. */
export function endpointFor(base: string, transport: ClientTransportName, service?: string): URL {
  const path = transport === 'sse' ? '/sse' : transport === 'ws' ? '/ws' : '/mcp';
  const url = new URL(service ? `${path}/${service}` : path, base);
  if (transport === 'ws') url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url;
}

export function transportFor(base: string, transport: ClientTransportName, service?: string): Transport {
  const url = endpointFor(base, transport, service);
  if (transport === 'ws') return new WebSocketClientTransport(url);
  return transport === 'sse' ? new SSEClientTransport(url) : new StreamableHTTPClientTransport(url);
}

/**
 * An official SDK Client connected through the gateway. It declares sampling and answers
 * every sampling request with SAMPLED_TEXT, so tools that sample can complete.
 */
export async function connectClient(
  base: string,
  transport: ClientTransportName,
  service?: string,
): Promise<{ client: Client; transport: Transport }> {
  const client = new Client({ name: 'gateway-e2e', version: '1.0.0' }, { capabilities: { sampling: {} } });
  client.setRequestHandler(CreateMessageRequestSchema, async () => ({
    role: 'assistant',
    content: { type: 'text', text: SAMPLED_TEXT },
    model: 'test-model',
  }));
  const t = transportFor(base, transport, service);
  await client.connect(t);
  return { client, transport: t };
}
