import {
  isNotification,
  isResponse,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
} from '../../../libs/protocol/src';
import { resultOf, type RequestMultiplexer } from '../../pool/request-multiplexer';
import type { ChannelListener, ClientChannel } from '../../session/client-channel';
import type { Session } from '../../session/session';
import type { KeepAliveTarget } from '../http/keep-alive-ticker';
import type { HeaderParams } from './param-headers';
import { INPUT_METHODS } from './sessionless-input';

/** What the bridge keeps of the upstream's initialize result (server/discover, serverInfo, capabilities). */
export interface InitializeResult {
  protocolVersion?: string;
  capabilities?: Record<string, unknown>;
  serverInfo?: unknown;
  instructions?: string;
}

/**
 * A subscriptions/listen stream fed from an entry's hidden session, as the entry holds it
 * (ListenStream in sessionless-listen.ts, which builds on this file, implements it).
 */
export interface BridgeListener extends KeepAliveTarget {
  /** The listen request's id: the subscription id every message on the stream carries. */
  readonly id: JsonRpcId;
  /** Whether the stream's filter admits this upstream notification. */
  wants(message: JsonRpcNotification): boolean;
  write(message: unknown): void;
  /** Graceful end: the answer to the listen request, then the end of the stream. */
  finish(): void;
}

/**
 * The hidden session's standalone stream while anybody listens (StandaloneChannel in
 * sessionless-listen.ts): marked closed when it is given back.
 */
export interface BridgeStandalone extends ClientChannel {
  closed: boolean;
}

/**
 * The gateway-owned session shared by one client's sessionless requests to one service: a
 * Session like any other, with a port from the port factory (`dedicated` or `pooled` per the
 * service's mode), initialized by the gateway from the first request's `_meta`.
 */
export class BridgeEntry {
  constructor(
    /** Its key in the bridges map: client id, service and, for a client's further sessions, a lane. */
    readonly key: string,
    /** Client id and service: whom the session (and each requestState minted on it) belongs to. */
    readonly principal: string,
  ) {}
  session: Session | undefined = undefined;
  init: InitializeResult | undefined = undefined;
  ready: Promise<void> | undefined = undefined;
  /** Requests waiting for the session to start (a lane is not quiet while any wait). */
  starting = 0;
  /**
   * Upstream ids of the requests that may ask for input (tools/call, resources/read,
   * prompts/get) in flight on this session, parked ones included.
   */
  readonly inputInFlight = new Set<string>();

  /**
   * The request an untagged upstream question belongs to when the session cannot tell (several
   * requests in flight, stdio): the one request in flight that may ask for input, if there is one.
   */
  soleInputRequest(): string | undefined {
    if (this.inputInFlight.size !== 1) return undefined;
    for (const id of this.inputInFlight) return id;
    return undefined;
  }
  error: string | undefined = undefined;
  /** `x-mcp-header` annotations by tool name, from the upstream's tools/list. */
  tools = new Map<string, HeaderParams>();
  /** When `tools` was last filled from a complete tools/list (0: never, or invalidated). */
  toolsLoadedAt = 0;
  toolsLoading: Promise<void> | undefined = undefined;
  /** Open subscriptions/listen streams fed from this session. */
  readonly listeners = new Set<BridgeListener>();
  /** Takes the hidden session's standalone stream while anybody listens. */
  standalone: BridgeStandalone | undefined = undefined;
  /** Upstream resources/subscribe reference counts, by URI. */
  readonly resourceSubscriptions = new Map<string, number>();

  /** Nothing depends on it: no listener, no request on its way, not starting up. */
  idle(): boolean {
    const session = this.session;
    if (!session || session.closed) return true;
    if (this.init === undefined || this.listeners.size > 0 || this.toolsLoading !== undefined) return false;
    return session.inFlightCount === 0 && !session.hasLiveChannel();
  }
}

/**
 * The stream of a request the gateway itself sends on a hidden session: hands the answer to the
 * multiplexer that runs the request, or abandons it when the stream ends without one.
 */
class CaptureChannel implements ClientChannel {
  readonly kind = 'streamable' as const;
  listener: ChannelListener | undefined = undefined;
  closed = false;
  readonly bufferedBytes = 0;

  constructor(
    private readonly session: Session,
    private readonly requests: RequestMultiplexer<unknown>,
    private readonly id: JsonRpcId,
    /** Notifications that reached this stream only because it was the one request in flight. */
    private readonly notification: ((message: JsonRpcNotification) => void) | undefined,
  ) {}

  send(_seq: number, _stream: number, raw: string): boolean {
    this.session.ackAll(); // nothing here is ever resumed
    const m = JSON.parse(raw) as JsonRpcMessage;
    if (isNotification(m)) this.notification?.(m);
    if (!isResponse(m)) return true;
    this.closed = true;
    if (!this.requests.internalAnswer(m)) this.requests.abandonInternal(this.id, 'unexpected answer');
    return true;
  }

  end(): void {
    if (!this.closed) this.close(0, 'the upstream did not answer');
  }

  close(_code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.requests.abandonInternal(this.id, reason);
  }
}

/**
 * Sends a request of the gateway's own (initialize, tools/list, resources/subscribe) on a hidden
 * session, through the request multiplexer; resolves with its result, rejects with the error's
 * message. The session's request timeout bounds it.
 */
export function internalRequest(
  requests: RequestMultiplexer<unknown>,
  session: Session,
  method: string,
  params: Record<string, unknown> | undefined,
  notification?: (message: JsonRpcNotification) => void,
): Promise<Record<string, unknown>> {
  return requests
    .internal(method, params, (request) => {
      const stream = session.openStream(new CaptureChannel(session, requests, request.id, notification));
      session.receive(request, undefined, stream);
      session.sealStream(stream);
    })
    .then(resultOf);
}

/** A request that may ask for input and is not a retry: it wants a hidden session to itself. */
export function needsLane(request: JsonRpcRequest): boolean {
  if (!INPUT_METHODS.has(request.method)) return false;
  return (request.params as { requestState?: unknown } | undefined)?.requestState === undefined;
}

/**
 * No request that may ask for input is in flight on the entry's hidden session (a parked one
 * counts), and none waits for it to start. Other requests (lists, completions) may share it: an
 * untagged question raised while one of them overlaps goes to the one request that may ask
 * (soleInputRequest).
 */
export function quiet(entry: BridgeEntry): boolean {
  const session = entry.session;
  return session !== undefined && !session.closed && entry.starting === 0 && entry.inputInFlight.size === 0;
}
