import { randomUUID } from 'node:crypto';
import { idKey, type JsonRpcId } from '../../libs/protocol/src';

/** One server→client request the gateway relayed to one client under an id of its own. */
export interface Asked<U, C> {
  /** What the client saw: `gs-` and a random UUID, so no other client can guess it. */
  readonly gatewayId: string;
  /** The upstream session that asked, and its own id for the request. */
  readonly upstream: U;
  readonly upstreamId: JsonRpcId;
  /** The one client it was sent to: the only one whose answer is taken. */
  readonly client: C;
  /** The client's request it was raised during (its stream), when known. */
  readonly related: JsonRpcId | undefined;
}

/** Why a client's answer was not taken. */
export type RefusedAnswer = 'unknown_id' | 'wrong_session';

/**
 * The server→client requests (sampling, elicitation, roots) of one pooled service that wait for a
 * client's answer. Each is recorded with the client it was sent to, under an unguessable gateway
 * id; an answer is taken only from that client. Indexed by client and by upstream session, so a
 * client that leaves or an upstream session that dies takes its entries with it. Bounded in
 * total and per client: past a bound the oldest entry is evicted and handed back, so the caller
 * can answer the upstream (it must never be left waiting).
 *
 * Plain bookkeeping: it sends nothing.
 */
export class ServerRequests<U, C> {
  private readonly byId = new Map<string, Asked<U, C>>();
  private readonly byUpstream = new Map<U, Map<string, Asked<U, C>>>();
  private readonly byClient = new Map<C, Set<Asked<U, C>>>();

  constructor(
    private readonly maxTotal: number,
    private readonly maxPerClient: number,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  /**
   * Records a request `upstream` raised for `client`. Returns the entry, the entries evicted to
   * stay within the bounds (usually none) and the entry it replaced (an upstream that reuses an id
   * it still waits on), all forgotten already. An evicted entry still waits upstream; a replaced
   * one does not (its id is the new request's now).
   */
  ask(
    upstream: U,
    upstreamId: JsonRpcId,
    client: C,
    related: JsonRpcId | undefined,
  ): { asked: Asked<U, C>; evicted: Asked<U, C>[] | undefined; replaced: Asked<U, C> | undefined } {
    let evicted: Asked<U, C>[] | undefined;
    const previous = this.byUpstream.get(upstream)?.get(idKey(upstreamId));
    const replaced = previous ? this.remove(previous) : undefined;
    const asked: Asked<U, C> = { gatewayId: `gs-${randomUUID()}`, upstream, upstreamId, client, related };
    this.byId.set(asked.gatewayId, asked);
    let ofUpstream = this.byUpstream.get(upstream);
    if (!ofUpstream) this.byUpstream.set(upstream, (ofUpstream = new Map()));
    ofUpstream.set(idKey(upstreamId), asked);
    let ofClient = this.byClient.get(client);
    if (!ofClient) this.byClient.set(client, (ofClient = new Set()));
    ofClient.add(asked);
    // Insertion order is age order in both: the first entry is the oldest.
    if (ofClient.size > this.maxPerClient) {
      (evicted ??= []).push(this.remove(ofClient.values().next().value as Asked<U, C>));
    }
    if (this.byId.size > this.maxTotal) {
      (evicted ??= []).push(this.remove(this.byId.values().next().value as Asked<U, C>));
    }
    return { asked, evicted, replaced };
  }

  /**
   * A client answered `gatewayId`. Taken (and forgotten) only when that is a request sent to this
   * client; an answer from any other client changes nothing, so the real one still counts.
   */
  answer(client: C, gatewayId: JsonRpcId | null): Asked<U, C> | RefusedAnswer {
    const asked = typeof gatewayId === 'string' ? this.byId.get(gatewayId) : undefined;
    if (!asked) return 'unknown_id';
    if (asked.client !== client) return 'wrong_session';
    return this.remove(asked);
  }

  /** The upstream withdrew its request `upstreamId` (notifications/cancelled): forgotten and returned. */
  withdraw(upstream: U, upstreamId: JsonRpcId): Asked<U, C> | undefined {
    const asked = this.byUpstream.get(upstream)?.get(idKey(upstreamId));
    return asked ? this.remove(asked) : undefined;
  }

  /** The client left: its entries, forgotten. */
  clientGone(client: C): Asked<U, C>[] {
    const set = this.byClient.get(client);
    if (!set) return [];
    const all = [...set];
    for (const asked of all) this.remove(asked);
    return all;
  }

  /** The upstream session is gone: its entries, forgotten. */
  upstreamGone(upstream: U): Asked<U, C>[] {
    const map = this.byUpstream.get(upstream);
    if (!map) return [];
    const all = [...map.values()];
    for (const asked of all) this.remove(asked);
    return all;
  }

  private remove(asked: Asked<U, C>): Asked<U, C> {
    this.byId.delete(asked.gatewayId);
    const ofUpstream = this.byUpstream.get(asked.upstream);
    if (ofUpstream?.get(idKey(asked.upstreamId)) === asked) {
      ofUpstream.delete(idKey(asked.upstreamId));
      if (ofUpstream.size === 0) this.byUpstream.delete(asked.upstream);
    }
    const ofClient = this.byClient.get(asked.client);
    if (ofClient) {
      ofClient.delete(asked);
      if (ofClient.size === 0) this.byClient.delete(asked.client);
    }
    return asked;
  }
}
