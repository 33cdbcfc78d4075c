import type { JsonRpcRequest } from '../../libs/protocol/src';

/**
 * Decides whether a request that was in flight when its replica failed may be sent again to
 * another replica. Only requests that cannot have had effects qualify: MCP's read-only
 * methods, and tool calls whose tool declares `readOnlyHint` or `idempotentHint`
 * (annotations learnt from the `tools/list` results that pass through, per service).
 */
const SAFE_METHODS = new Set([
  'ping',
  // Set-up requests: repeating them leaves the same state.
  'initialize',
  'logging/setLevel',
  'resources/subscribe',
  'resources/unsubscribe',
  'tools/list',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'prompts/list',
  'prompts/get',
  'completion/complete',
  'server/discover',
]);

export class ReplaySafety {
  /** Tool name → true when a repeat cannot cause a second side effect. */
  private readonly safeTools = new Map<string, boolean>();

  isSafe(request: JsonRpcRequest): boolean {
    if (SAFE_METHODS.has(request.method)) return true;
    if (request.method !== 'tools/call') return false;
    const name = (request.params as { name?: unknown } | undefined)?.name;
    return typeof name === 'string' && this.safeTools.get(name) === true;
  }

  /** Learns tool annotations from a `tools/list` result (any page). */
  learnTools(result: unknown): void {
    const tools = (result as { tools?: unknown } | undefined)?.tools;
    if (!Array.isArray(tools)) return;
    for (const tool of tools) {
      const name = (tool as { name?: unknown } | undefined)?.name;
      if (typeof name !== 'string') continue;
      const hints = (tool as { annotations?: { readOnlyHint?: unknown; idempotentHint?: unknown } })
        .annotations;
      this.safeTools.set(name, hints?.readOnlyHint === true || hints?.idempotentHint === true);
    }
  }
}
