import { ErrorCode, errorResponse, idKey, type JsonRpcId } from '../../libs/protocol/src';
import type { UpstreamHandshake } from './upstream-handshake';
import type { UpstreamSink } from './upstream-connection';

/**
 * Requests written to an upstream that has not answered them yet. When the connection is
 * lost (a child exits, a stream drops) every one of them gets an error, so no client request
 * is left hanging; the gateway's own handshake requests are not the client's to hear about.
 */
export class InFlightRequests {
  private readonly ids = new Map<string, JsonRpcId>();

  add(id: JsonRpcId): void {
    this.ids.set(idKey(id), id);
  }

  delete(id: JsonRpcId): void {
    this.ids.delete(idKey(id));
  }

  clear(): void {
    this.ids.clear();
  }

  failAll(sink: UpstreamSink | undefined, handshake: UpstreamHandshake, why: string): void {
    const ids = [...this.ids.values()];
    this.ids.clear();
    for (const id of ids) {
      if (!handshake.isInternal(id)) answerUnavailable(sink, id, why);
    }
  }
}

/** Answers one client request with UpstreamUnavailable and the reason. */
export function answerUnavailable(sink: UpstreamSink | undefined, id: JsonRpcId, why: string): void {
  sink?.upstreamMessage(errorResponse(id, ErrorCode.UpstreamUnavailable, why), undefined, id);
}
