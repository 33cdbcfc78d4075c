import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { endpointFor, type ClientTransportName } from './clients';

/**
 * An SDK client that names itself `clientId` through the `client_id` query parameter, which every
 * transport reads (WebSocket and EventSource cannot set headers).
 */
export async function connectAs(
  base: string,
  transport: ClientTransportName,
  clientId: string,
): Promise<{ client: Client; transport: Transport }> {
  const url = endpointFor(base, transport);
  url.searchParams.set('client_id', clientId);
  const t: Transport =
    transport === 'ws'
      ? new WebSocketClientTransport(url)
      : transport === 'sse'
        ? new SSEClientTransport(url)
        : new StreamableHTTPClientTransport(url);
  const client = new Client({ name: 'policy-test', version: '1.0.0' });
  await client.connect(t);
  return { client, transport: t };
}
