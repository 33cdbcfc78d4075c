export * from './jsonrpc';
export * from './mcp';
export * from './event-id';
export * from './sse-parser';
