/** The transports the gateway speaks, named once for every layer. */

/** How a client reaches the gateway: Streamable HTTP, legacy HTTP+SSE, WebSocket. */
export type ClientTransport = 'streamable' | 'sse' | 'ws';

/** How the gateway reaches an upstream replica. */
export type UpstreamTransportKind = 'streamable-http' | 'sse' | 'stdio' | 'ws' | 'embedded';

/** Extra HTTP headers that travel with one message (trace context, 2026-07-28 `Mcp-Param-*`). */
export type MessageHeaders = Readonly<Record<string, string>>;
