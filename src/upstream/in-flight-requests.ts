import {
  ErrorCode,
  errorResponse,
  idKey,
  isResponse,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
} from '../../libs/protocol/src/jsonrpc';
import { Method } from '../../libs/protocol/src/mcp';
import { HandshakeStep, type UpstreamHandshake } from './upstream-handshake';
import type { UpstreamSink } from './upstream-connection';

/**
 * Requests written to an upstream that has not answered them yet. When the connection is
 * lost (a child exits, a stream drops) every one of them gets an error, so no client request
 * is left hanging; the gateway's own handshake requests are not the client's to hear about.
 * A request the client cancelled (or the session gave up on, which it tells the upstream with the
 * same notifications/cancelled) is forgotten as that notice goes out: it will never be answered.
 */
export class InFlightRequests {
  private readonly ids = new Map<string, JsonRpcId>();

  add(id: JsonRpcId): void {
    this.ids.set(idKey(id), id);
  }

  delete(id: JsonRpcId): void {
    this.ids.delete(idKey(id));
  }

  /** Requests still waiting for an answer. */
  get size(): number {
    return this.ids.size;
  }

  /** Forgets the request a notifications/cancelled names, when `message` is one. */
  forgetCancelled(message: JsonRpcMessage): void {
    const id = cancelledRequestId(message);
    if (id !== undefined) this.ids.delete(idKey(id));
  }

  clear(): void {
    this.ids.clear();
  }

  failAll(sink: UpstreamSink | undefined, handshake: UpstreamHandshake | undefined, why: string): void {
    const ids = [...this.ids.values()];
    this.ids.clear();
    for (const id of ids) {
      if (handshake === undefined || !handshake.isInternal(id)) answerUnavailable(sink, id, why);
    }
  }
}

/**
 * The id of the request a notifications/cancelled names, or undefined for any other message. The
 * session sends one both when the client cancels and when it abandons a request (timeout, client
 * gone), so recognising it here is how every upstream learns to stop waiting.
 */
export function cancelledRequestId(message: JsonRpcMessage): JsonRpcId | undefined {
  if ((message as JsonRpcNotification).method !== Method.Cancelled || 'id' in message) return undefined;
  const requestId = ((message as JsonRpcNotification).params as { requestId?: unknown } | undefined)
    ?.requestId;
  return typeof requestId === 'string' || typeof requestId === 'number' ? requestId : undefined;
}

/** Answers one client request with UpstreamUnavailable and the reason. */
export function answerUnavailable(sink: UpstreamSink | undefined, id: JsonRpcId, why: string): void {
  sink?.upstreamMessage(errorResponse(id, ErrorCode.UpstreamUnavailable, why), undefined, id);
}

/**
 * A request that never reached the upstream: the sink is told so (it may send it to another
 * replica); a sink that cannot act on it gets the UpstreamUnavailable answer.
 */
export function answerNotSent(sink: UpstreamSink | undefined, id: JsonRpcId, why: string): void {
  if (sink?.upstreamNotSent) sink.upstreamNotSent(id, why);
  else answerUnavailable(sink, id, why);
}

/**
 * What every upstream does first with a message it read: an answered request is no longer in
 * flight, the handshake claims the answers that are the gateway's own, and anything else goes to
 * the sink. Returns the handshake step, so the caller finishes a replay its own way.
 */
export function takeIncoming(
  message: JsonRpcMessage,
  raw: string | undefined,
  inFlight: InFlightRequests,
  handshake: UpstreamHandshake,
  sink: UpstreamSink | undefined,
): HandshakeStep {
  if (isResponse(message) && message.id !== null) inFlight.delete(message.id);
  const step = handshake.incoming(message);
  if (step === HandshakeStep.Deliver) sink?.upstreamMessage(message, raw, undefined);
  return step;
}
