/**
 * Multi-round-trip requests (MCP 2026-07-28 basic/patterns/mrtr) through the 2026-07-28 bridge:
 * an older upstream's sampling / elicitation / roots requests reach a 2026-07-28 client as an
 * `input_required` result, the upstream request is parked until the retry brings
 * `inputResponses` and the echoed `requestState`, and that state is refused when tampered,
 * replayed, expired, presented by another identity or on another request. Also: the bridge's
 * hidden upstream sessions are per authenticated identity (namespaced across auth modes).
 *
 * Raw HTTP 2026-07-28 requests: the SDK v2 client packages are not installed here.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { apiKeyDigest } from '../src/policy/identity';
import { everythingStdioReplica } from './helpers/everything';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { BOTH, raw, type RawResponse } from './helpers/streamable-http-client';

type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });

const MODERN = '2026-07-28';
const CONFORMANCE = join(__dirname, 'fixtures', 'conformance-server.js');
const PROBE = join(__dirname, 'fixtures', 'streamable-http-probe-server.js');
const SECRET = 'a-jwt-secret-long-enough-for-hs256-0123';
const KEYS = {
  alice: 'alice-api-key-0123456789abcdef0123',
  bob: 'bob-api-key-0123456789abcdef012345',
  carol: 'carol-api-key-0123456789abcdef01234',
};
const TTL_MS = 1500;
const CAPS = 'io.modelcontextprotocol/clientCapabilities';
const ALL_CAPS = { sampling: {}, elicitation: {}, roots: {} };
/**
 * server-everything asks for roots 350 ms after initialize when the client declared them: that
 * question would join whichever tool call is in flight then, so its calls here declare no roots.
 */
const EVERYTHING_CAPS = { sampling: {}, elicitation: {} };

type Who = Record<string, string>;
const alice: Who = { 'x-api-key': KEYS.alice };
const bob: Who = { 'x-api-key': KEYS.bob };
const carol: Who = { 'x-api-key': KEYS.carol };

function meta(caps: Record<string, unknown> = ALL_CAPS, extra: Record<string, unknown> = {}) {
  return {
    'io.modelcontextprotocol/protocolVersion': MODERN,
    [CAPS]: caps,
    'io.modelcontextprotocol/clientInfo': { name: 'mrtr-test', version: '1.0.0' },
    ...extra,
  };
}

let seq = 0;

/** One 2026-07-28 request as `who`; `params` without `_meta` (given by `caps`). */
function call(
  base: string,
  service: string,
  who: Who,
  method: string,
  params: Record<string, unknown>,
  caps: Record<string, unknown> = ALL_CAPS,
): Promise<RawResponse> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: BOTH,
    'mcp-protocol-version': MODERN,
    'mcp-method': method,
    ...who,
  };
  const name = method === 'resources/read' ? params.uri : params.name;
  if (typeof name === 'string') headers['mcp-name'] = name;
  const id = `r${++seq}`;
  return raw(base, {
    path: `/mcp/${service}`,
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta: meta(caps) } }),
  }).then((res) => {
    if (res.json && res.json.id !== null)
      assert.equal(res.json.id, id, 'each answer carries its own request id');
    return res;
  });
}

function tool(
  base: string,
  service: string,
  who: Who,
  name: string,
  args: Record<string, unknown> = {},
  caps: Record<string, unknown> = ALL_CAPS,
) {
  return call(base, service, who, 'tools/call', { name, arguments: args }, caps);
}

/** Expects an input_required result; returns its questions and state. */
function inputRequired(res: RawResponse) {
  assert.equal(res.status, 200, res.text);
  const r = res.json.result;
  assert.equal(r.resultType, 'input_required', res.text);
  assert.equal(typeof r.requestState, 'string');
  return r as { inputRequests: Record<string, { method: string; params: any }>; requestState: string };
}

/** Expects a 400 / −32602 refusal of a requestState for `reason`. */
function refusedState(res: RawResponse, reason: string) {
  assert.equal(res.status, 400, res.text);
  assert.equal(res.json.error.code, -32602, res.text);
  assert.equal(res.json.error.data.reason, reason, res.text);
}

function textOf(res: RawResponse): string {
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.result.resultType, 'complete', res.text);
  return res.json.result.content.map((c: { text?: string }) => c.text ?? '').join('\n');
}

describe('2026-07-28 bridge: multi-round-trip requests (input_required)', () => {
  let gw: RunningGateway;
  let base: string;
  let jose: Jose;

  before(async () => {
    const specifier = 'jose';
    jose = (await import(specifier)) as Jose;
    gw = await startGateway(
      {
        services: {
          everything: { replicas: [everythingStdioReplica()] },
          conf: { replicas: [{ transport: 'stdio', command: process.execPath, args: [CONFORMANCE] }] },
          probe: { replicas: [{ transport: 'stdio', command: process.execPath, args: [PROBE] }] },
        },
        defaultService: 'conf',
        clients: {
          alice: { apiKeys: [apiKeyDigest(KEYS.alice)] },
          bob: { apiKeys: [apiKeyDigest(KEYS.bob)] },
          carol: { apiKeys: [apiKeyDigest(KEYS.carol)] },
        },
      },
      {
        AUTH_MODE: 'api_key,jwt',
        AUTH_JWT_SECRET: SECRET,
        SESSIONLESS_INPUT_TTL_MS: String(TTL_MS),
        SESSIONLESS_INPUT_MAX_PER_CLIENT: '2',
      },
    );
    base = gw.url;
  });
  after(async () => {
    await gw.close();
  });

  function jwt(sub: string): Promise<string> {
    return new jose.SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(sub)
      .setExpirationTime('10m')
      .sign(new TextEncoder().encode(SECRET));
  }

  it('server-everything: a tool that asks for sampling completes through input_required', async () => {
    const first = inputRequired(
      await tool(
        base,
        'everything',
        alice,
        'trigger-sampling-request',
        { prompt: 'capital?', maxTokens: 20 },
        EVERYTHING_CAPS,
      ),
    );
    const keys = Object.keys(first.inputRequests);
    assert.equal(keys.length, 1);
    const question = first.inputRequests[keys[0]];
    assert.equal(question.method, 'sampling/createMessage');
    assert.match(JSON.stringify(question.params.messages), /capital\?/);

    const done = await call(
      base,
      'everything',
      alice,
      'tools/call',
      {
        name: 'trigger-sampling-request',
        arguments: { prompt: 'capital?', maxTokens: 20 },
        inputResponses: {
          [keys[0]]: {
            role: 'assistant',
            content: { type: 'text', text: 'Paris, of course' },
            model: 'test-model',
            stopReason: 'endTurn',
          },
        },
        requestState: first.requestState,
      },
      EVERYTHING_CAPS,
    );
    assert.match(textOf(done), /Paris, of course/);
  });

  it('server-everything: a tool that asks for elicitation completes through input_required', async () => {
    const first = inputRequired(
      await tool(base, 'everything', alice, 'trigger-elicitation-request', {}, EVERYTHING_CAPS),
    );
    const [key] = Object.keys(first.inputRequests);
    assert.equal(first.inputRequests[key].method, 'elicitation/create');
    assert.ok(first.inputRequests[key].params.requestedSchema.properties.name);

    const done = await call(
      base,
      'everything',
      alice,
      'tools/call',
      {
        name: 'trigger-elicitation-request',
        arguments: {},
        inputResponses: { [key]: { action: 'accept', content: { name: 'Ada Lovelace', check: true } } },
        requestState: first.requestState,
      },
      EVERYTHING_CAPS,
    );
    const text = textOf(done);
    assert.match(text, /User provided the requested information/);
    assert.match(text, /Ada Lovelace/);
  });

  it('several rounds: each retry gets the next question with a new state, then the answer', async () => {
    const name = 'test_input_required_result_multi_round';
    const r1 = inputRequired(await tool(base, 'conf', alice, name));
    assert.deepEqual(Object.keys(r1.inputRequests), ['step1']);
    const r2 = inputRequired(
      await call(base, 'conf', alice, 'tools/call', {
        name,
        arguments: {},
        inputResponses: { step1: { action: 'accept', content: { name: 'Ada' } } },
        requestState: r1.requestState,
      }),
    );
    assert.deepEqual(Object.keys(r2.inputRequests), ['step2']);
    assert.notEqual(r2.requestState, r1.requestState);
    const done = await call(base, 'conf', alice, 'tools/call', {
      name,
      arguments: {},
      inputResponses: { step2: { action: 'accept', content: { color: 'blue' } } },
      requestState: r2.requestState,
    });
    assert.equal(textOf(done), 'Ada likes blue');
  });

  it('prompts/get asks through input_required too (not only tools/call)', async () => {
    const name = 'test_input_required_result_prompt';
    const first = inputRequired(await call(base, 'conf', alice, 'prompts/get', { name }));
    assert.deepEqual(Object.keys(first.inputRequests), ['user_context']);
    assert.equal(first.inputRequests.user_context.params._meta, undefined, 'the gateway’s tags are removed');
    const done = await call(base, 'conf', alice, 'prompts/get', {
      name,
      inputResponses: { user_context: { action: 'accept', content: { context: 'tests' } } },
      requestState: first.requestState,
    });
    assert.equal(done.status, 200, done.text);
    assert.equal(done.json.result.resultType, 'complete');
    assert.equal(done.json.result.messages[0].content.text, 'Context: tests');
  });

  it('a tampered requestState is refused (−32602 tampered); the genuine one still works, once', async () => {
    const name = 'test_input_required_result_elicitation';
    const first = inputRequired(await tool(base, 'conf', alice, name));
    const state = first.requestState;
    const [v, payload, mac] = state.split('.');
    const forged = Buffer.from(payload, 'base64url').toString('utf8').replace(/"r":1/, '"r":2');
    const tampered = [
      `${v}.${Buffer.from(forged).toString('base64url')}.${mac}`,
      `${state}x`,
      `${v}.${payload}.${Buffer.alloc(32).toString('base64url')}`,
    ];
    const retry = (requestState: string) =>
      call(base, 'conf', alice, 'tools/call', {
        name,
        arguments: {},
        inputResponses: { user_name: { action: 'accept', content: { name: 'Mallory' } } },
        requestState,
      });
    for (const t of tampered) refusedState(await retry(t), 'tampered');
    refusedState(await retry('not-a-state'), 'malformed');

    assert.equal(textOf(await retry(state)), 'Hello, Mallory!');
    // Replayed: the state was used (and its request answered).
    const again = await retry(state);
    refusedState(again, 'replayed');
  });

  it('a state of an earlier round is refused as replayed while the request goes on', async () => {
    const name = 'test_input_required_result_multi_round';
    const r1 = inputRequired(await tool(base, 'conf', alice, name));
    const answer1 = {
      name,
      arguments: {},
      inputResponses: { step1: { action: 'accept', content: { name: 'Ada' } } },
      requestState: r1.requestState,
    };
    const r2 = inputRequired(await call(base, 'conf', alice, 'tools/call', answer1));
    refusedState(await call(base, 'conf', alice, 'tools/call', answer1), 'replayed');
    const done = await call(base, 'conf', alice, 'tools/call', {
      name,
      arguments: {},
      inputResponses: { step2: { action: 'accept', content: { color: 'red' } } },
      requestState: r2.requestState,
    });
    assert.equal(textOf(done), 'Ada likes red');
  });

  it('a state presented by another identity is refused (foreign), across auth modes too', async () => {
    const name = 'test_input_required_result_elicitation';
    const first = inputRequired(await tool(base, 'conf', alice, name));
    const body = {
      name,
      arguments: {},
      inputResponses: { user_name: { action: 'accept', content: { name: 'Eve' } } },
      requestState: first.requestState,
    };
    refusedState(await call(base, 'conf', bob, 'tools/call', body), 'foreign');
    // A JWT whose subject is "alice" is another client (jwt:alice) than the API key "alice".
    const jwtAlice = { authorization: `Bearer ${await jwt('alice')}` };
    refusedState(await call(base, 'conf', jwtAlice, 'tools/call', body), 'foreign');
    // Another service of the same client is another principal too.
    refusedState(
      await call(base, 'probe', alice, 'tools/call', { ...body, name: 'ask_and_record' }),
      'foreign',
    );
    // The owner can still use it.
    assert.equal(textOf(await call(base, 'conf', alice, 'tools/call', body)), 'Hello, Eve!');
  });

  it('a state presented on another request (other arguments or tool) is refused (mismatch)', async () => {
    const first = inputRequired(await tool(base, 'conf', alice, 'test_input_required_result_tampered_state'));
    const inputResponses = { confirm: { action: 'accept', content: { ok: true } } };
    refusedState(
      await call(base, 'conf', alice, 'tools/call', {
        name: 'test_input_required_result_request_state',
        arguments: {},
        inputResponses,
        requestState: first.requestState,
      }),
      'mismatch',
    );
    refusedState(
      await call(base, 'conf', alice, 'tools/call', {
        name: 'test_input_required_result_tampered_state',
        arguments: { extra: 1 },
        inputResponses,
        requestState: first.requestState,
      }),
      'mismatch',
    );
    const done = await call(base, 'conf', alice, 'tools/call', {
      name: 'test_input_required_result_tampered_state',
      arguments: {},
      inputResponses,
      requestState: first.requestState,
    });
    assert.equal(textOf(done), 'confirmed=true');
  });

  it('an unanswered question is asked again (new state) instead of failing', async () => {
    const name = 'test_input_required_result_request_state';
    const first = inputRequired(await tool(base, 'conf', alice, name));
    const again = inputRequired(
      await call(base, 'conf', alice, 'tools/call', {
        name,
        arguments: {},
        inputResponses: { something_else: { action: 'accept', content: {} } },
        requestState: first.requestState,
      }),
    );
    assert.deepEqual(Object.keys(again.inputRequests), ['confirm']);
    const done = await call(base, 'conf', alice, 'tools/call', {
      name,
      arguments: {},
      inputResponses: { confirm: { action: 'accept', content: { ok: true } } },
      requestState: again.requestState,
    });
    assert.match(textOf(done), /state-ok/);
  });

  it('a capability the request did not declare is 400 / −32021 naming it (never relayed)', async () => {
    const res = await tool(
      base,
      'conf',
      alice,
      'test_input_required_result_elicitation',
      {},
      { sampling: {} },
    );
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.error.code, -32021);
    assert.deepEqual(res.json.error.data.requiredCapabilities, { elicitation: {} });

    const everything = await tool(base, 'everything', alice, 'trigger-elicitation-request', {}, {});
    assert.equal(everything.status, 400, everything.text);
    assert.equal(everything.json.error.code, -32021);
    assert.deepEqual(everything.json.error.data.requiredCapabilities, { elicitation: {} });

    // Only the declared one is asked for; the upstream copes without the other.
    const partial = inputRequired(
      await tool(base, 'conf', alice, 'test_input_required_result_capabilities', {}, { sampling: {} }),
    );
    assert.deepEqual(
      Object.values(partial.inputRequests).map((q) => q.method),
      ['sampling/createMessage'],
    );
  });

  it('malformed inputResponses or requestState are 400 / −32602', async () => {
    for (const bad of [{ inputResponses: null }, { inputResponses: [1] }, { requestState: 7 }]) {
      const res = await call(base, 'conf', alice, 'tools/call', {
        name: 'test_input_required_result_elicitation',
        arguments: {},
        ...bad,
      });
      assert.equal(res.status, 400, res.text);
      assert.equal(res.json.error.code, -32602);
    }
  });

  it('concurrent requests of one client that ask for input each get their own questions (untagged stdio upstream)', async () => {
    // The probe does not say which request a question belongs to: each such request runs on a
    // hidden session of its own, so each question reaches the right client request.
    const [a, b] = await Promise.all([
      tool(base, 'probe', bob, 'ask_and_record'),
      tool(base, 'probe', bob, 'ask_and_record'),
    ]);
    const states = [inputRequired(a), inputRequired(b)];
    const answers = await Promise.all(
      states.map((s, i) =>
        call(base, 'probe', bob, 'tools/call', {
          name: 'ask_and_record',
          arguments: {},
          inputResponses: { [Object.keys(s.inputRequests)[0]]: { action: i === 0 ? 'accept' : 'decline' } },
          requestState: s.requestState,
        }),
      ),
    );
    assert.deepEqual(answers.map(textOf), ['answer: accept', 'answer: decline']);
  });

  it('an answer the upstream gives while the request is parked goes to the retry', async () => {
    const first = inputRequired(await tool(base, 'probe', bob, 'ask_then_answer'));
    await sleep(400);
    const [key] = Object.keys(first.inputRequests);
    const done = await call(base, 'probe', bob, 'tools/call', {
      name: 'ask_then_answer',
      arguments: {},
      inputResponses: { [key]: { action: 'accept', content: {} } },
      requestState: first.requestState,
    });
    assert.equal(textOf(done), 'answered without input');
    // The question still got its answer upstream.
    const asked = JSON.parse(textOf(await tool(base, 'probe', bob, 'asked'))) as string[];
    assert.ok(asked.includes('late answer: accept'), JSON.stringify(asked));
  });

  it('a retry that never comes: the upstream request is released with a clear error, the state expires', async () => {
    const first = inputRequired(await tool(base, 'probe', carol, 'ask_and_record'));
    const [key] = Object.keys(first.inputRequests);
    await sleep(TTL_MS + 800);
    const late = await call(base, 'probe', carol, 'tools/call', {
      name: 'ask_and_record',
      arguments: {},
      inputResponses: { [key]: { action: 'accept', content: {} } },
      requestState: first.requestState,
    });
    refusedState(late, 'expired');
    assert.match(late.json.error.message, /expired/);

    const asked = JSON.parse(textOf(await tool(base, 'probe', carol, 'asked'))) as string[];
    assert.equal(asked.length, 1);
    assert.match(
      asked[0],
      /^error: .*did not retry with inputResponses within 1500 ms \(SESSIONLESS_INPUT_TTL_MS\)/,
    );
  });

  it('requests waiting for input are bounded per client (429 / −31003 past SESSIONLESS_INPUT_MAX_PER_CLIENT)', async () => {
    const who = { 'x-api-key': KEYS.carol };
    inputRequired(await tool(base, 'probe', who, 'ask_and_record'));
    inputRequired(await tool(base, 'probe', who, 'ask_and_record'));
    const third = await tool(base, 'probe', who, 'ask_and_record');
    assert.equal(third.status, 429, third.text);
    assert.equal(third.json.error.code, -31003);
    assert.match(third.json.error.message, /SESSIONLESS_INPUT_MAX_PER_CLIENT/);
    // Another client is not affected.
    inputRequired(await tool(base, 'probe', bob, 'ask_and_record'));
    // Once the parked ones are released, the client may ask again.
    await sleep(TTL_MS + 800);
    inputRequired(await tool(base, 'probe', who, 'ask_and_record'));
  });
});

describe('2026-07-28 bridge: one hidden upstream session per identity', () => {
  let gw: RunningGateway;
  let base: string;
  let jose: Jose;

  before(async () => {
    const specifier = 'jose';
    jose = (await import(specifier)) as Jose;
    gw = await startGateway(
      {
        services: {
          conf: { replicas: [{ transport: 'stdio', command: process.execPath, args: [CONFORMANCE] }] },
        },
        defaultService: 'conf',
        clients: {
          alice: { apiKeys: [apiKeyDigest(KEYS.alice)] },
          bob: { apiKeys: [apiKeyDigest(KEYS.bob)] },
        },
      },
      { AUTH_MODE: 'api_key,jwt', AUTH_JWT_SECRET: SECRET },
    );
    base = gw.url;
  });
  after(async () => {
    await gw.close();
  });

  async function toolNames(who: Who): Promise<string[]> {
    const res = await call(base, 'conf', who, 'tools/list', {});
    assert.equal(res.status, 200, res.text);
    return (res.json.result.tools as Array<{ name: string }>).map((t) => t.name);
  }

  it('state one identity changes upstream is never seen by another (API key, JWT of the same name)', async () => {
    const jwtAlice = {
      authorization: `Bearer ${await new jose.SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('alice')
        .setExpirationTime('10m')
        .sign(new TextEncoder().encode(SECRET))}`,
    };
    const everyone = [alice, bob, jwtAlice];
    for (const who of everyone) assert.ok(!(await toolNames(who)).includes('test_dynamic_tool'));
    // alice's upstream session gains a tool; the others' do not.
    assert.equal(textOf(await tool(base, 'conf', alice, 'test_trigger_tool_change')), 'Tool list changed');
    assert.ok((await toolNames(alice)).includes('test_dynamic_tool'));
    assert.ok(!(await toolNames(bob)).includes('test_dynamic_tool'));
    assert.ok(!(await toolNames(jwtAlice)).includes('test_dynamic_tool'), 'jwt:alice is not alice');
    // And the other way round.
    await tool(base, 'conf', jwtAlice, 'test_trigger_prompt_change');
    const prompts = async (who: Who) => {
      const res = await call(base, 'conf', who, 'prompts/list', {});
      return (res.json.result.prompts as Array<{ name: string }>).map((p) => p.name);
    };
    assert.ok((await prompts(jwtAlice)).includes('test_dynamic_prompt'));
    assert.ok(!(await prompts(alice)).includes('test_dynamic_prompt'));
    assert.ok(!(await prompts(bob)).includes('test_dynamic_prompt'));
  });
});
