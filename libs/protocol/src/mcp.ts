/** MCP protocol revisions and header names, as the specification spells them. */

export const PROTOCOL_VERSIONS = [
  '2024-11-05',
  '2025-03-26',
  '2025-06-18',
  '2025-11-25',
  '2026-07-28',
] as const;
export type ProtocolVersion = (typeof PROTOCOL_VERSIONS)[number];

/** The newest revision that still has sessions, initialize and the GET stream. */
export const LATEST_SESSION_PROTOCOL: ProtocolVersion = '2025-11-25';
/** The sessionless revision: every request stands alone. */
export const SESSIONLESS_PROTOCOL: ProtocolVersion = '2026-07-28';
/** What a Streamable HTTP server assumes when a request carries no MCP-Protocol-Version header. */
export const DEFAULT_HTTP_PROTOCOL: ProtocolVersion = '2025-03-26';

export function isSupportedProtocol(v: string): v is ProtocolVersion {
  return (PROTOCOL_VERSIONS as readonly string[]).includes(v);
}

/** Only 2025-03-26 allows JSON-RPC batches. */
export function allowsBatches(v: string): boolean {
  return v === '2025-03-26';
}

/** 2025-11-25 added priming events and `retry:` before a server closes a stream. */
export function supportsPriming(v: string): boolean {
  return v >= '2025-11-25';
}

export const Header = {
  SessionId: 'mcp-session-id',
  ProtocolVersion: 'mcp-protocol-version',
  LastEventId: 'last-event-id',
  Method: 'mcp-method',
  Name: 'mcp-name',
  ParamPrefix: 'mcp-param-',
} as const;

export const Method = {
  Initialize: 'initialize',
  Initialized: 'notifications/initialized',
  Ping: 'ping',
  Cancelled: 'notifications/cancelled',
  Progress: 'notifications/progress',
  Discover: 'server/discover',
} as const;
