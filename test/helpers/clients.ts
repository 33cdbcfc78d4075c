import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';

/** The client transports one suite runs over. */
export type ClientTransportName = 'streamable' | 'sse';
export const CLIENT_TRANSPORTS: ClientTransportName[] = ['streamable', 'sse'];

export const SAMPLED_TEXT = 'sampled through the gateway';

/** The gateway URL a transport connects to, for the default service or a named one. */
export function endpointFor(base: string, transport: ClientTransportName, service?: string): URL {
  const path = transport === 'sse' ? '/sse' : '/mcp';
  return new URL(service ? `${path}/${service}` : path, base);
}

export function transportFor(base: string, transport: ClientTransportName, service?: string): Transport {
  const url = endpointFor(base, transport, service);
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
