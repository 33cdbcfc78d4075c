/**
 * Pooled isolation, property-based (fast-check, command-based model run).
 *
 * One gateway, four pooled services over the same fixture upstream (test/fixtures/isolation-server.ts):
 * Streamable HTTP upstream (names the request of what arrives on its stream) and WebSocket upstream
 * (cannot: only an exclusive checkout attributes), each with maxConcurrentPerConnection 1 and 3.
 * Each case picks a service and 2–6 official SDK clients (Streamable HTTP or WebSocket; API-key
 * identities, named clients, anonymous), then runs a random sequence of commands: tool calls whose
 * plans raise sampling, elicitation, roots, progress, logging, resource updates and server-side
 * cancellations at random points; forged answers (to another client's pending server request, or
 * to guessed ids); client cancellations; disconnects; pauses. Calls are not awaited by the command
 * that starts them, so calls, answers and cancellations interleave.
 *
 * Invariants, checked on every message each client receives and at the upstream:
 * - every message a client receives belongs to it (every payload names the caller's tag; a
 *   cancellation names a server request the client was sent; a response answers its own request);
 * - every request is answered at most once on the wire, and a call that was neither cancelled
 *   nor cut by a disconnect is answered (exactly once): with its own result, or a JSON-RPC error
 *   from the gateway (−31003 when every upstream session is held), never left without an answer;
 * - no forged answer is accepted: the upstream sees only answers naming the tag it asked for,
 *   and no server request of its is answered twice.
 *
 * Seeded: the seed is printed; POOLED_ISOLATION_SEED=<n> replays the same cases, and with the
 * `path` fast-check prints for a failure, POOLED_ISOLATION_PATH=<path> replays just that case (the
 * interleaving itself still depends on timing). Bounded: POOLED_ISOLATION_RUNS cases, default 60
 * (each 2–6 clients, at most 24 commands): 7–20 s measured on the shared 2-core machine, well within
 * a 60 s budget; a call that hangs fails its case after 10 s instead of stalling the suite.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ErrorCode,
  ListRootsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import fc from 'fast-check';
import { PoolManager } from '../src/pool/pool-manager.service';
import { apiKeyDigest } from '../src/policy/identity';
import { endpointFor } from './helpers/clients';
import { startGateway, type RunningGateway } from './helpers/gateway';
import { SdkHttpSessions } from './helpers/sdk-http-sessions';
import { seededRandom, testSeed } from './helpers/seed';
import {
  answerText,
  createIsolationServer,
  newLedger,
  rootUri,
  STEPS,
  tagUri,
  type IsolationLedger,
  type Step,
} from './fixtures/isolation-server';
import { startWsMcpServer, type WsMcpServer } from './fixtures/ws-mcp-server';

const SEED = testSeed('POOLED_ISOLATION_SEED');
const RUNS = Number(process.env.POOLED_ISOLATION_RUNS ?? 60);
const SERVICES = ['http1', 'http3', 'ws1', 'ws3'] as const;
const KEYS: Record<string, string> = { alice: 'alice-isolation-key-0001', bob: 'bob-isolation-key-0002' };
/** How long the end of a case waits for calls still running (a hang fails the case, it does not stall the suite). */
const SETTLE_MS = 10_000;

type Identity = { kind: 'key'; name: string } | { kind: 'named'; name: string } | { kind: 'anonymous' };
interface ClientSpec {
  transport: 'streamable' | 'ws';
  identity: Identity;
}

interface Call {
  controller: AbortController;
  cancelled: boolean;
  done: boolean;
  /**
   * `result`; `error`: a JSON-RPC error came back (e.g. −31003 when every upstream session is held
   * by calls of clients that went away without ending their session); `lost`: no answer came (the
   * SDK's own timeout, or the connection closed).
   */
  outcome: 'result' | 'error' | 'lost' | undefined;
  error: string | undefined;
}

type PendingKind = 'sampling' | 'elicitation' | 'roots';

/** One SDK client of a case, with what it saw. */
interface Peer {
  tag: string;
  client: Client;
  transport: Transport;
  alive: boolean;
  /** Ids of server requests delivered to it; those its handlers still work on, with their kind. */
  delivered: Set<string | number>;
  pending: Map<string | number, PendingKind>;
  /** Responses received per request id (wire level). */
  responses: Map<string | number, number>;
  calls: Call[];
}

interface Real {
  peers: Peer[];
  violations: string[];
  random: () => number;
}

function violation(real: Real, peer: Peer, what: string): void {
  real.violations.push(`${peer.tag}: ${what}`);
}

/** Whether message `m`, received by `peer`, is its own; records what it learns. */
function inspect(real: Real, peer: Peer, m: any): void {
  const tag = peer.tag;
  if (m.method !== undefined && m.id !== undefined) {
    const ok =
      m.method === 'sampling/createMessage'
        ? String(m.params?.messages?.[0]?.content?.text).startsWith(`for ${tag}`) &&
          String(m.params.messages[0].content.text)
            .slice(`for ${tag}`.length)
            .match(/^( \(slow\))?$/) !== null
        : m.method === 'elicitation/create'
          ? m.params?.message === `for ${tag}`
          : m.method === 'roots/list'
            ? m.params?._meta?.tag === tag
            : m.method === 'ping';
    if (!ok) violation(real, peer, `received another's request ${JSON.stringify(m)}`);
    if (peer.delivered.has(m.id)) violation(real, peer, `server request id ${m.id} delivered twice`);
    peer.delivered.add(m.id);
    return;
  }
  if (m.method !== undefined) {
    const p = m.params ?? {};
    const ok =
      m.method === 'notifications/progress'
        ? p.message === `for ${tag}`
        : m.method === 'notifications/message'
          ? p.data === `for ${tag}`
          : m.method === 'notifications/resources/updated'
            ? p.uri === tagUri(tag)
            : m.method === 'notifications/cancelled'
              ? peer.delivered.has(p.requestId)
              : false;
    if (!ok) violation(real, peer, `received a notification not its own ${JSON.stringify(m)}`);
    return;
  }
  const n = (peer.responses.get(m.id) ?? 0) + 1;
  peer.responses.set(m.id, n);
  if (n > 1) violation(real, peer, `request ${m.id} answered ${n} times`);
  const text = m.result?.content?.[0]?.text;
  if (typeof text === 'string' && text.startsWith('{"tag"')) {
    const named = (JSON.parse(text) as { tag: string }).tag;
    if (named !== tag) violation(real, peer, `got the tool result of ${named}`);
  }
}

async function connectPeer(base: string, service: string, spec: ClientSpec, real: Real, index: number) {
  const tag = `t${index}-${randomUUID().slice(0, 8)}`;
  const url = endpointFor(base, spec.transport, service);
  const headers: Record<string, string> = {};
  if (spec.identity.kind === 'named') url.searchParams.set('client_id', spec.identity.name);
  if (spec.identity.kind === 'key') headers['x-api-key'] = KEYS[spec.identity.name];
  const transport: Transport =
    spec.transport === 'ws'
      ? new WebSocketClientTransport(url)
      : new StreamableHTTPClientTransport(url, { requestInit: { headers } });
  const client = new Client(
    { name: tag, version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: {}, roots: {} } },
  );
  const peer: Peer = {
    tag,
    client,
    transport,
    alive: true,
    delivered: new Set(),
    pending: new Map(),
    responses: new Map(),
    calls: [],
  };
  // Answers take a little while (random, seeded), so forgeries and cancellations can race them.
  const answerLater = async <T>(
    id: string | number,
    kind: PendingKind,
    slow: boolean,
    result: T,
  ): Promise<T> => {
    peer.pending.set(id, kind);
    try {
      await new Promise((r) => setTimeout(r, slow ? 60 : Math.floor(real.random() * 25)));
      return result;
    } finally {
      peer.pending.delete(id);
    }
  };
  client.setRequestHandler(CreateMessageRequestSchema, (request, extra) => {
    const text = String((request.params.messages[0]?.content as { text?: unknown }).text);
    return answerLater(extra.requestId, 'sampling', text.endsWith('(slow)'), {
      role: 'assistant' as const,
      content: { type: 'text' as const, text: answerText(tag) },
      model: 'm',
    });
  });
  client.setRequestHandler(ElicitRequestSchema, (_request, extra) =>
    answerLater(extra.requestId, 'elicitation', false, { action: 'accept' as const, content: { tag } }),
  );
  client.setRequestHandler(ListRootsRequestSchema, (_request, extra) =>
    answerLater(extra.requestId, 'roots', false, { roots: [{ uri: rootUri(tag), name: tag }] }),
  );
  client.onerror = () => undefined; // progress for a finished call and the like: not what is checked here
  await client.connect(transport);
  // Every message the client receives from now on passes the check before the SDK sees it.
  const deliver = transport.onmessage!;
  transport.onmessage = (message, extra) => {
    inspect(real, peer, message);
    deliver(message, extra);
  };
  await client.subscribeResource({ uri: tagUri(tag) });
  return peer;
}

// ------------------------------------------------------------------ commands

type Model = { alive: boolean[] };

class CallCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly who: number,
    readonly steps: Step[],
    readonly progress: boolean,
    readonly pauseMs: number,
  ) {}
  check = (m: Readonly<Model>) => m.alive[this.who % m.alive.length];
  async run(_m: Model, real: Real): Promise<void> {
    const peer = real.peers[this.who % real.peers.length];
    const call: Call = {
      controller: new AbortController(),
      cancelled: false,
      done: false,
      outcome: undefined,
      error: undefined,
    };
    peer.calls.push(call);
    const promise = peer.client.callTool(
      { name: 'act', arguments: { tag: peer.tag, steps: this.steps, pauseMs: this.pauseMs } },
      undefined,
      {
        signal: call.controller.signal,
        timeout: SETTLE_MS,
        onprogress: this.progress ? () => undefined : undefined,
      },
    );
    // Not awaited: the next commands run while it is in flight.
    (call as { promise?: Promise<unknown> }).promise = promise.then(
      () => {
        call.done = true;
        call.outcome = 'result';
      },
      (err: Error) => {
        call.done = true;
        const code = (err as { code?: unknown }).code;
        call.outcome =
          code === ErrorCode.RequestTimeout || code === ErrorCode.ConnectionClosed || code === undefined
            ? 'lost'
            : 'error';
        call.error = err.message;
      },
    );
  }
  toString = () => `call(${this.who}, [${this.steps.join(',')}]${this.progress ? ', progress' : ''})`;
}

/** Forged answers sent over the whole suite. */
let forgeries = 0;

class ForgeCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly who: number,
    readonly target: number,
    readonly guess: boolean,
  ) {}
  check = (m: Readonly<Model>) => m.alive[this.who % m.alive.length];
  async run(_m: Model, real: Real): Promise<void> {
    const forger = real.peers[this.who % real.peers.length];
    // The victim: the target if it has server requests open, else any other client that has.
    const others = real.peers.filter((p) => p !== forger && p.pending.size > 0);
    const named = real.peers[this.target % real.peers.length];
    const victim = others.includes(named) ? named : others[this.target % Math.max(1, others.length)];
    const pending = victim ? [...victim.pending] : [];
    const [id, kind] =
      !this.guess && pending.length > 0
        ? pending[Math.floor(real.random() * pending.length)]
        : [real.random() < 0.5 ? `gs-${randomUUID()}` : 'gs-1', 'sampling' as PendingKind];
    const result =
      kind === 'sampling'
        ? { role: 'assistant', content: { type: 'text', text: answerText(forger.tag) }, model: 'forged' }
        : kind === 'elicitation'
          ? { action: 'accept', content: { tag: forger.tag } }
          : { roots: [{ uri: rootUri(forger.tag) }] };
    forgeries++;
    await forger.transport.send({ jsonrpc: '2.0', id, result } as never).catch(() => undefined);
  }
  toString = () => `forge(${this.who} → ${this.guess ? 'guess' : this.target})`;
}

class CancelCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly who: number,
    readonly pick: number,
  ) {}
  check = (m: Readonly<Model>) => m.alive[this.who % m.alive.length];
  async run(_m: Model, real: Real): Promise<void> {
    const open = real.peers[this.who % real.peers.length].calls.filter((c) => !c.done && !c.cancelled);
    if (open.length === 0) return;
    const call = open[this.pick % open.length];
    call.cancelled = true;
    call.controller.abort('cancelled by the test');
  }
  toString = () => `cancel(${this.who})`;
}

class DisconnectCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly who: number) {}
  check = (m: Readonly<Model>) => m.alive[this.who % m.alive.length];
  async run(m: Model, real: Real): Promise<void> {
    m.alive[this.who % m.alive.length] = false;
    const peer = real.peers[this.who % real.peers.length];
    peer.alive = false;
    // Streamable HTTP ends its session (DELETE); a WebSocket just goes, and its session ends when
    // the detached timeout (1 s here) passes: both with calls and server requests still open.
    if (peer.transport instanceof StreamableHTTPClientTransport) {
      await peer.transport.terminateSession().catch(() => undefined);
    }
    await peer.client.close().catch(() => undefined);
  }
  toString = () => `disconnect(${this.who})`;
}

class WaitCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(): Promise<void> {
    await new Promise((r) => setTimeout(r, this.ms));
  }
  toString = () => `wait(${this.ms})`;
}

const who = fc.nat(5);
const call = fc
  .tuple(who, fc.array(fc.constantFrom(...STEPS), { minLength: 1, maxLength: 5 }), fc.boolean(), fc.nat(15))
  .map(([w, steps, progress, pause]) => new CallCommand(w, steps, progress, pause));
const forge = fc.tuple(who, who, fc.boolean()).map(([w, t, g]) => new ForgeCommand(w, t, g));
const wait = fc.nat(30).map((ms) => new WaitCommand(ms));
// Calls, forgeries and pauses weigh more (listed more than once): a case is mostly traffic, with
// a few cancellations and at most a few disconnects.
const commands = fc.commands(
  [
    call,
    call,
    call,
    call,
    forge,
    forge,
    wait,
    wait,
    fc.tuple(who, fc.nat(3)).map(([w, p]) => new CancelCommand(w, p)),
    who.map((w) => new DisconnectCommand(w)),
  ],
  { maxCommands: 24, size: 'max' },
);

const identity: fc.Arbitrary<Identity> = fc.oneof(
  fc.constantFrom(...Object.keys(KEYS)).map((name) => ({ kind: 'key' as const, name })),
  fc.constantFrom('carol', 'dave').map((name) => ({ kind: 'named' as const, name })),
  fc.constant({ kind: 'anonymous' as const }),
);
const clientSpec: fc.Arbitrary<ClientSpec> = fc
  .tuple(fc.constantFrom('streamable' as const, 'ws' as const), identity)
  // API keys travel in a header, which the SDK's WebSocket client cannot send: those clients use HTTP.
  .map(([transport, id]) => ({ transport: id.kind === 'key' ? 'streamable' : transport, identity: id }));

// ------------------------------------------------------------------ the suite

describe('pooled isolation, property-based', () => {
  let gw: RunningGateway;
  const http: Server[] = [];
  let ws: WsMcpServer;
  let ledger: IsolationLedger;

  before(async () => {
    ledger = newLedger();
    // One origin per HTTP service: the gateway sizes an origin's socket pool for the pooled
    // service that first uses it, so two services on one origin would share one service's budget.
    for (let i = 0; i < 2; i++) {
      const sessions = new SdkHttpSessions(() => createIsolationServer(ledger));
      const server = createServer((req, res) => {
        sessions.handle(req, res, undefined).catch(() => {
          if (!res.headersSent) res.writeHead(500).end();
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      http.push(server);
    }
    const httpUrl = (i: number) => `http://127.0.0.1:${(http[i].address() as { port: number }).port}/mcp`;
    ws = await startWsMcpServer(0, () => createIsolationServer(ledger));
    const pool = (mcpc: number) => ({
      min: 0,
      max: 2,
      maxWaitingClients: 1000,
      // Well under the clients' own timeout: a call that cannot get an upstream session is answered.
      acquireTimeoutMs: 2000,
      maxConcurrentPerConnection: mcpc,
    });
    const httpReplica = (i: number) => [{ transport: 'streamable-http' as const, url: httpUrl(i) }];
    const wsReplica = [{ transport: 'ws' as const, url: ws.url }];
    gw = await startGateway(
      {
        defaultService: 'http1',
        services: {
          http1: { mode: 'pooled', pool: pool(1), replicas: httpReplica(0) },
          http3: { mode: 'pooled', pool: pool(3), replicas: httpReplica(1) },
          ws1: { mode: 'pooled', pool: pool(1), replicas: wsReplica },
          ws3: { mode: 'pooled', pool: pool(3), replicas: wsReplica },
        },
        clients: Object.fromEntries(
          Object.entries(KEYS).map(([name, key]) => [
            name,
            { apiKeys: [apiKeyDigest(key)], disabled: false },
          ]),
        ),
      },
      { AUTH_MODE: 'none,api_key', SESSION_DETACHED_TIMEOUT_MS: '1000', SESSION_SWEEP_INTERVAL_MS: '200' },
    );
  });

  after(async () => {
    await gw?.close();
    await ws?.close();
    for (const server of http) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test(`${RUNS} cases: every message is its client's, every request answered once, no forgery taken`, async () => {
    console.log(
      `pooled isolation property: seed ${SEED} (replay with POOLED_ISOLATION_SEED=${SEED}), ${RUNS} cases`,
    );
    let cases = 0;
    /** What the cases exercised, printed at the end (a suite that stopped exercising would show it). */
    const seen = { calls: 0, answered: 0, refused: 0, serverRequests: 0, cancelled: 0, disconnects: 0 };
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...SERVICES),
        fc.array(clientSpec, { minLength: 2, maxLength: 6 }),
        fc.integer(),
        commands,
        async (service, specs, randomSeed, cmds) => {
          cases++;
          const real: Real = { peers: [], violations: [], random: seededRandom(randomSeed) };
          const mismatchesBefore = ledger.mismatches.length;
          try {
            for (let i = 0; i < specs.length; i++)
              real.peers.push(await connectPeer(gw.url, service, specs[i], real, i));
            await fc.asyncModelRun(() => ({ model: { alive: specs.map(() => true) }, real }), cmds);
            const running = real.peers.flatMap((p) =>
              p.calls.map((c) => (c as { promise?: Promise<unknown> }).promise),
            );
            await Promise.race([
              Promise.all(running),
              new Promise((r) => setTimeout(r, SETTLE_MS + 2000).unref()),
            ]);
            for (const peer of real.peers) {
              seen.calls += peer.calls.length;
              seen.answered += peer.calls.filter((c) => c.outcome === 'result').length;
              seen.refused += peer.calls.filter((c) => c.outcome === 'error').length;
              seen.cancelled += peer.calls.filter((c) => c.cancelled).length;
              seen.serverRequests += peer.delivered.size;
              if (!peer.alive) seen.disconnects++;
              for (const call of peer.calls) {
                if (call.cancelled || !peer.alive) continue;
                if (call.outcome !== 'result' && call.outcome !== 'error')
                  violation(real, peer, `a call was not answered (${call.error ?? 'still open'})`);
              }
            }
            assert.deepEqual(real.violations, [], `${service}: ${real.violations.join('\n')}`);
            assert.deepEqual(
              ledger.mismatches.slice(mismatchesBefore),
              [],
              'a forged or misrouted answer was taken',
            );
            for (const [id, n] of ledger.answersPerRequest)
              assert.ok(n <= 1, `the upstream got ${n} answers to its request ${id}`);
          } catch (err) {
            // fast-check reports the counterexample; the reason is printed here, once per failing case.
            console.log(
              `pooled isolation property: case failed: ${(err as Error).message}\npools: ${JSON.stringify(gw.gateway.app.get(PoolManager).stats().pools)}`,
            );
            throw err;
          } finally {
            for (const peer of real.peers) {
              if (peer.transport instanceof StreamableHTTPClientTransport && peer.alive)
                await peer.transport.terminateSession().catch(() => undefined);
              await peer.client.close().catch(() => undefined);
            }
          }
        },
      ),
      { seed: SEED, path: process.env.POOLED_ISOLATION_PATH || undefined, numRuns: RUNS, endOnFailure: true },
    );
    console.log(
      `pooled isolation property: ${cases} cases in ${Date.now() - started} ms; ${JSON.stringify({ ...seen, forged: forgeries })}`,
    );
  });
});
