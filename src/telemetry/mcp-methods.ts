/**
 * The MCP request methods a latency histogram is kept for, by index: the session stores the
 * index in its in-flight entry and the response bumps `histograms[index]` — no string-keyed
 * lookup per response, and the method label is bounded by construction (anything else is "other").
 */
export const MCP_METHODS = [
  'initialize',
  'ping',
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'prompts/list',
  'prompts/get',
  'completion/complete',
  'logging/setLevel',
  'tasks/get',
  'tasks/result',
  'tasks/list',
  'tasks/cancel',
  'server/discover',
  'other',
] as const;

export type McpMethodName = (typeof MCP_METHODS)[number];

export const METHOD_TOOLS_CALL = MCP_METHODS.indexOf('tools/call');
export const METHOD_TOOLS_LIST = MCP_METHODS.indexOf('tools/list');
export const METHOD_OTHER = MCP_METHODS.length - 1;

const INDEX = new Map<string, number>(MCP_METHODS.map((m, i) => [m, i]));

/** The histogram index of a request method; METHOD_OTHER for anything not in MCP_METHODS. */
export function methodIndex(method: string): number {
  // One lookup per request at receive time (the response side only indexes an array).
  return INDEX.get(method) ?? METHOD_OTHER;
}
