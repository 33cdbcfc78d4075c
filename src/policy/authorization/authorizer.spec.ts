import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compileAccess } from './access-rules';
import { allowed, filterListAnswer, targetOf } from './authorizer';

describe('authorization rules', () => {
  const access = compileAccess({
    tools: { allow: ['echo', 'get_*'], deny: ['get_secret'] },
    resources: { deny: ['file:///etc/*'] },
    prompts: { allow: [] },
  })!;

  test('allow patterns, deny wins, an empty allow list allows nothing, no rules allow all', () => {
    assert.equal(allowed(access, { kind: 'tool', name: 'echo' }), true);
    assert.equal(allowed(access, { kind: 'tool', name: 'get_weather' }), true);
    assert.equal(allowed(access, { kind: 'tool', name: 'get_secret' }), false);
    assert.equal(allowed(access, { kind: 'tool', name: 'echo2' }), false);
    assert.equal(allowed(access, { kind: 'resource', name: 'file:///etc/passwd' }), false);
    assert.equal(allowed(access, { kind: 'resource', name: 'file:///home/a' }), true);
    assert.equal(allowed(access, { kind: 'prompt', name: 'summarize' }), false);
    assert.equal(compileAccess({}), undefined);
  });

  test('glob metacharacters other than * and ? are literal', () => {
    const a = compileAccess({ tools: { allow: ['a.b', 'x?z', 'p(1)'] } })!;
    assert.equal(allowed(a, { kind: 'tool', name: 'a.b' }), true);
    assert.equal(allowed(a, { kind: 'tool', name: 'aXb' }), false);
    assert.equal(allowed(a, { kind: 'tool', name: 'xyz' }), true);
    assert.equal(allowed(a, { kind: 'tool', name: 'p(1)' }), true);
  });

  test('targets of the methods that name something', () => {
    const req = (method: string, params: Record<string, unknown>) => ({
      jsonrpc: '2.0' as const,
      id: 1,
      method,
      params,
    });
    assert.deepEqual(targetOf(req('tools/call', { name: 'echo' })), { kind: 'tool', name: 'echo' });
    assert.deepEqual(targetOf(req('resources/subscribe', { uri: 'u://x' })), {
      kind: 'resource',
      name: 'u://x',
    });
    assert.deepEqual(targetOf(req('completion/complete', { ref: { type: 'ref/prompt', name: 'p' } })), {
      kind: 'prompt',
      name: 'p',
    });
    assert.equal(targetOf(req('tools/list', {})), undefined);
  });

  test('list answers lose what is not allowed; unchanged answers are left to the upstream bytes', () => {
    const answer = {
      jsonrpc: '2.0' as const,
      id: 7,
      result: { tools: [{ name: 'echo' }, { name: 'get_secret' }, { name: 'rm' }], nextCursor: 'c' },
    };
    const filtered = filterListAnswer(access, 'tools/list', answer)!;
    assert.equal(filtered.removed, 2);
    assert.deepEqual(JSON.parse(filtered.text), {
      jsonrpc: '2.0',
      id: 7,
      result: { tools: [{ name: 'echo' }], nextCursor: 'c' },
    });
    const kept = { jsonrpc: '2.0' as const, id: 8, result: { tools: [{ name: 'echo' }] } };
    assert.equal(filterListAnswer(access, 'tools/list', kept), undefined);
    const error = { jsonrpc: '2.0' as const, id: 9, error: { code: -1, message: 'x' } };
    assert.equal(filterListAnswer(access, 'tools/list', error), undefined);
  });
});
