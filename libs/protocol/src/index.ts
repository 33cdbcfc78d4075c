export * from './jsonrpc';
export * from './mcp';
export * from './request-meta';
export * from './event-id';
export * from './sse-parser';
