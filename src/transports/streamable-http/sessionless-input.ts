import {
  ErrorCode,
  errorResponse,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcRequest,
} from '../../../libs/protocol/src';
import { STANDALONE_STREAM, type Session } from '../../session/session';
import { digestOf, RequestStateCodec, type StateRefusal } from './request-state';

/**
 * Multi-round-trip requests (MCP 2026-07-28 basic/patterns/mrtr) on the 2026-07-28 bridge.
 *
 * An older upstream asks for input with server→client requests (sampling/createMessage,
 * elicitation/create, roots/list) while it serves a client's tools/call, resources/read or
 * prompts/get. A 2026-07-28 client cannot receive requests, so the bridge answers the client
 * with an `input_required` result listing them and a `requestState`, and *parks* the upstream
 * request: it stays in flight on the hidden session, its questions unanswered, until the
 * client's retry (a new request id, `inputResponses` and the state echoed) brings the answers.
 * The retry then takes over the parked request's stream and gets its final answer — or the
 * next round's `input_required` when the upstream asks again.
 *
 * A parked request is bounded per client (SESSIONLESS_INPUT_MAX_PER_CLIENT) and in time
 * (SESSIONLESS_INPUT_TTL_MS, also the state's lifetime): when the retry never comes, the
 * upstream's questions get an error naming the bound and the request is cancelled upstream.
 */

/** The requests that may answer input_required (2026-07-28 basic/patterns/mrtr, "Supported Requests"). */
export const INPUT_METHODS: ReadonlySet<string> = new Set(['tools/call', 'resources/read', 'prompts/get']);

/** An upstream question put to the client, waiting for its answer in a retry. */
export interface InputQuestion {
  readonly key: string;
  /** The upstream's id for its request (answered on the hidden session). */
  readonly upstreamId: JsonRpcId;
  readonly method: string;
  readonly params: unknown;
}

/**
 * Upstreams written for the gateway may name the key of their question (`_meta` of the
 * server→client request), so a client sees a stable, meaningful key; otherwise the bridge
 * names it after the method and a counter.
 */
export const META_INPUT_KEY = 'mcp-gateway/inputKey';

/**
 * A stdio upstream's messages carry no sign of the request they belong to: with several
 * requests of one client in flight on the hidden session, a question can only be attributed
 * when the upstream tags it with the id of the request it serves (its `extra.requestId`).
 */
export const META_RELATED_REQUEST = 'mcp-gateway/relatedRequestId';

/** The request an upstream message names in `_meta` (see META_RELATED_REQUEST). */
export function relatedFromMeta(message: JsonRpcMessage): JsonRpcId | undefined {
  const params = (message as { params?: { _meta?: Record<string, unknown> } }).params;
  const id = params?._meta?.[META_RELATED_REQUEST];
  return typeof id === 'string' || typeof id === 'number' ? id : undefined;
}

const KEY_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
const SHORT_NAME: Record<string, string> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

/** What a flow needs of the response channel that holds its request (a SessionlessChannel). */
export interface FlowChannel {
  readonly parked: boolean;
  readonly session: Session;
  readonly entry: { readonly principal: string };
  readonly gatewayId: string;
  readonly method: string;
  releaseParked(reason: string): void;
}

/** One client request that needs input: its parked upstream request and the state of its rounds. */
export class InputFlow<C extends FlowChannel = FlowChannel> {
  readonly id = RequestStateCodec.flowId();
  /** The round whose state was last handed out (0: none yet). */
  round = 0;
  /** Whether that round's state is still unused. */
  stateLive = false;
  /** When a parked request is released (and its state expires). */
  expiresAt = 0;
  /** Questions put (or about to be put) to the client, by key. */
  readonly questions = new Map<string, InputQuestion>();
  /** The upstream's final answer when it came while parked (the retry gets it). */
  answer: JsonRpcMessage | undefined = undefined;
  private counter = 0;

  constructor(
    /** Client id and service: what the state is bound to. */
    readonly principal: string,
    readonly clientId: string,
    readonly entry: C['entry'],
    readonly session: Session,
    /** The id the client's request has upstream (and keeps across rounds). */
    readonly gatewayId: string,
    readonly method: string,
    /** Digest of the request's salient parameters. */
    readonly digest: string,
    /** The channel holding the request's stream: a live response, or the parked one. */
    public channel: C,
  ) {}

  /** Whether the request waits for a retry (its response was an input_required result). */
  get parked(): boolean {
    return this.channel.parked;
  }

  /** Records an upstream question and returns its key (unique within the request). */
  ask(req: JsonRpcRequest): string {
    const params = req.params as Record<string, unknown> | undefined;
    const meta = params?._meta as Record<string, unknown> | undefined;
    const hint = meta?.[META_INPUT_KEY];
    let relayed: unknown = params;
    if (meta && (hint !== undefined || meta[META_RELATED_REQUEST] !== undefined)) {
      // The tags are for the gateway: the client sees the request as the upstream meant it.
      const { [META_INPUT_KEY]: _hint, [META_RELATED_REQUEST]: _related, ...rest } = meta;
      relayed = Object.keys(rest).length > 0 ? { ...params, _meta: rest } : withoutMeta(params!);
    }
    let key: string;
    if (typeof hint === 'string' && KEY_PATTERN.test(hint) && !this.questions.has(hint)) key = hint;
    else {
      do key = `${SHORT_NAME[req.method] ?? 'input'}_${++this.counter}`;
      while (this.questions.has(key));
    }
    const question: InputQuestion = { key, upstreamId: req.id, method: req.method, params: relayed ?? {} };
    this.questions.set(key, question);
    return key;
  }
}

function withoutMeta(params: Record<string, unknown>): Record<string, unknown> {
  const { _meta: _m, ...rest } = params;
  return rest;
}

/** A refused requestState: the JSON-RPC error's message and `data.reason`. */
export interface StateRefused {
  reason: StateRefusal | 'replayed' | 'released' | 'unknown';
  message: string;
}

/** What became of a flow that no longer waits: kept until its state would have expired anyway. */
interface Ended {
  until: number;
  reason: 'replayed' | 'released';
  message: string;
}

/** Most ended flows remembered (for "already used" instead of "unknown"); the oldest go first. */
const MAX_ENDED = 10_000;

export interface InputLimits {
  ttlMs: number;
  maxPerClient: number;
}

/** The bridge's parked requests, one shared sweep timer for their deadlines. */
export class InputFlows<C extends FlowChannel = FlowChannel> {
  private readonly flows = new Map<string, InputFlow<C>>();
  private readonly perClient = new Map<string, number>();
  private readonly ended = new Map<string, Ended>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly codec: RequestStateCodec,
    readonly limits: InputLimits,
  ) {
    // One timer for every deadline; a parked request is released within a quarter of its lifetime.
    this.timer = setInterval(sweepFlows, Math.max(20, Math.min(1000, Math.floor(limits.ttlMs / 4))), this);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Requests waiting for input now (all clients). */
  get size(): number {
    return this.flows.size;
  }

  /** Starts a flow for `channel`'s request; undefined when its client is at the bound. */
  open(channel: C, digest: string): InputFlow<C> | undefined {
    const clientId = channel.session.clientId;
    const count = this.perClient.get(clientId) ?? 0;
    if (count >= this.limits.maxPerClient) return undefined;
    this.perClient.set(clientId, count + 1);
    const flow = new InputFlow<C>(
      channel.entry.principal,
      clientId,
      channel.entry,
      channel.session,
      channel.gatewayId,
      channel.method,
      digest,
      channel,
    );
    this.flows.set(flow.id, flow);
    return flow;
  }

  /** A new round's requestState; the flow must be retried before it expires. */
  mint(flow: InputFlow<C>): string {
    const now = Date.now();
    flow.round++;
    flow.stateLive = true;
    flow.expiresAt = now + this.limits.ttlMs;
    return this.codec.mint({
      f: flow.id,
      r: flow.round,
      e: flow.expiresAt,
      p: digestOf(flow.principal),
      m: flow.method,
      d: flow.digest,
      n: this.codec.node,
    });
  }

  /**
   * The flow a retry's requestState resumes, its state now used; or why the state is refused.
   * Checked in this order: integrity (nothing of a forged state is believed), expiry,
   * principal, method and parameters, then whether it is the live state of a waiting flow.
   */
  take(state: string, principal: string, method: string, digest: string): InputFlow<C> | StateRefused {
    const verdict = this.codec.verify(state, { principal, method, digest, now: Date.now() });
    if (!verdict.ok) return { reason: verdict.reason, message: REFUSAL_MESSAGE[verdict.reason] };
    const { f, r, n } = verdict.payload;
    const flow = this.flows.get(f);
    if (!flow) {
      const ended = this.ended.get(f);
      if (ended) return { reason: ended.reason, message: ended.message };
      return {
        reason: 'unknown',
        message:
          n !== this.codec.node
            ? `requestState names a request parked on gateway node ${n}, not this one`
            : 'requestState names no request waiting for input (the gateway restarted, or it was released)',
      };
    }
    if (flow.round !== r || !flow.stateLive || !flow.parked) {
      return {
        reason: 'replayed',
        message: 'requestState was already used: each round’s state is accepted once',
      };
    }
    flow.stateLive = false;
    return flow;
  }

  /**
   * The flow's request was answered: it ends, and its last state counts as used. Questions it
   * still had (raised too late to be asked) get an error: nobody can answer them any more.
   */
  complete(flow: InputFlow<C>): void {
    if (!this.end(flow, 'replayed', 'requestState was already used: its request has been answered')) return;
    for (const q of flow.questions.values()) {
      answerUpstream(
        flow.session,
        errorResponse(
          q.upstreamId,
          ErrorCode.InternalError,
          'the request was answered before the client was asked',
        ),
      );
    }
    flow.questions.clear();
  }

  /**
   * The flow ends without an answer for the client: the upstream's open questions get an error
   * (`reason` says why), the parked request is cancelled upstream, and a later retry is told.
   */
  release(flow: InputFlow<C>, reason: string): void {
    if (!this.end(flow, 'released', `the request this requestState belongs to was released: ${reason}`))
      return;
    const session = flow.session;
    for (const q of flow.questions.values()) {
      answerUpstream(session, errorResponse(q.upstreamId, ErrorCode.InternalError, reason));
    }
    flow.questions.clear();
    flow.channel.releaseParked(reason);
  }

  /** Releases parked requests past their deadline and forgets ended ones past their state's life. */
  sweep(now: number): void {
    for (const flow of [...this.flows.values()]) {
      if (flow.parked && flow.expiresAt <= now) {
        this.release(
          flow,
          `the client did not retry with inputResponses within ${this.limits.ttlMs} ms (SESSIONLESS_INPUT_TTL_MS)`,
        );
      }
    }
    for (const [id, e] of this.ended) {
      if (e.until <= now) this.ended.delete(id);
    }
  }

  private end(flow: InputFlow<C>, reason: Ended['reason'], message: string): boolean {
    if (this.flows.get(flow.id) !== flow) return false;
    this.flows.delete(flow.id);
    const count = (this.perClient.get(flow.clientId) ?? 1) - 1;
    if (count > 0) this.perClient.set(flow.clientId, count);
    else this.perClient.delete(flow.clientId);
    if (flow.round > 0) {
      this.ended.set(flow.id, { until: flow.expiresAt, reason, message });
      if (this.ended.size > MAX_ENDED) this.ended.delete(this.ended.keys().next().value as string);
    }
    return true;
  }
}

const REFUSAL_MESSAGE: Record<StateRefusal, string> = {
  malformed: 'requestState is not one this gateway issued',
  tampered: 'requestState failed its integrity check',
  expired: 'requestState has expired: start the request again',
  foreign: 'requestState was issued to another client',
  mismatch: 'requestState belongs to another request (its method or parameters differ)',
};

function sweepFlows(flows: InputFlows<FlowChannel>): void {
  flows.sweep(Date.now());
}

/** Answers a server→client request of the upstream on the hidden session. */
export function answerUpstream(session: Session, message: JsonRpcMessage): void {
  if (!session.closed) session.receive(message, undefined, STANDALONE_STREAM);
}
