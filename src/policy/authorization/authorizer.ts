import type { JsonRpcMessage, JsonRpcRequest } from '../../../libs/protocol/src';
import type { ClientAccess } from './access-rules';

/** The kind of thing a request names, and the name (tool or prompt name, resource URI). */
export interface NamedTarget {
  kind: 'tool' | 'resource' | 'prompt';
  name: string;
}

/** Requests that use one named thing, and where its name sits in params. */
const NAMED: Record<string, { kind: NamedTarget['kind']; field: 'name' | 'uri' }> = {
  'tools/call': { kind: 'tool', field: 'name' },
  'prompts/get': { kind: 'prompt', field: 'name' },
  'resources/read': { kind: 'resource', field: 'uri' },
  'resources/subscribe': { kind: 'resource', field: 'uri' },
  'resources/unsubscribe': { kind: 'resource', field: 'uri' },
};

/** List methods whose answers are filtered by the same rules, and the array and field they hold. */
export const LIST_METHODS: Record<string, { kind: NamedTarget['kind']; array: string; field: string }> = {
  'tools/list': { kind: 'tool', array: 'tools', field: 'name' },
  'prompts/list': { kind: 'prompt', array: 'prompts', field: 'name' },
  'resources/list': { kind: 'resource', array: 'resources', field: 'uri' },
  // A template is matched as written (`file:///logs/{name}`) against the resource patterns.
  'resources/templates/list': { kind: 'resource', array: 'resourceTemplates', field: 'uriTemplate' },
};

/**
 * What `request` names that the rules cover (tools/call's tool, prompts/get's prompt, a
 * resource URI, completion/complete's reference), or undefined when it names nothing.
 */
export function targetOf(request: JsonRpcRequest): NamedTarget | undefined {
  const params = request.params as Record<string, unknown> | undefined;
  const named = NAMED[request.method];
  if (named !== undefined) {
    const value = params?.[named.field];
    // A malformed name is the upstream's to refuse; an empty string still meets the rules.
    return { kind: named.kind, name: typeof value === 'string' ? value : '' };
  }
  if (request.method === 'completion/complete') {
    const ref = params?.ref as { type?: unknown; name?: unknown; uri?: unknown } | undefined;
    if (ref?.type === 'ref/prompt') return { kind: 'prompt', name: String(ref.name ?? '') };
    if (ref?.type === 'ref/resource') return { kind: 'resource', name: String(ref.uri ?? '') };
  }
  return undefined;
}

export function allowed(access: ClientAccess, target: NamedTarget): boolean {
  const rule =
    target.kind === 'tool' ? access.tools : target.kind === 'prompt' ? access.prompts : access.resources;
  return rule === undefined || rule.allows(target.name);
}

/** Whether the answer to `method` must be filtered for a client with these rules. */
export function filtersList(access: ClientAccess, method: string): boolean {
  const list = LIST_METHODS[method];
  if (list === undefined) return false;
  return (
    (list.kind === 'tool' ? access.tools : list.kind === 'prompt' ? access.prompts : access.resources) !==
    undefined
  );
}

/**
 * The answer to a list request without the entries the client may not use, as text; undefined
 * when nothing was removed (the upstream's bytes go out unchanged) or the answer is an error.
 * Returns how many entries were removed through `removed`.
 */
export function filterListAnswer(
  access: ClientAccess,
  method: string,
  response: JsonRpcMessage,
): { text: string; removed: number } | undefined {
  const list = LIST_METHODS[method];
  const result = (response as { result?: Record<string, unknown> }).result;
  if (list === undefined || !result || typeof result !== 'object') return undefined;
  const entries = result[list.array];
  if (!Array.isArray(entries)) return undefined;
  const kept = entries.filter((entry: unknown) => {
    const name = (entry as Record<string, unknown> | null)?.[list.field];
    return allowed(access, { kind: list.kind, name: typeof name === 'string' ? name : '' });
  });
  if (kept.length === entries.length) return undefined;
  return {
    text: JSON.stringify({ ...response, result: { ...result, [list.array]: kept } }),
    removed: entries.length - kept.length,
  };
}
