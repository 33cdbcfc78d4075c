// `export *` compiles (CommonJS) to an accessor per name: every call through this index runs a
// getter. Per-message code imports the submodule itself (`.../jsonrpc`, `.../mcp`) instead.
export * from './jsonrpc';
export * from './mcp';
export * from './request-meta';
export * from './event-id';
export * from './sse-parser';
