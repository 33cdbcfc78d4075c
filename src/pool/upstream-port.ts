import type { JsonRpcId, JsonRpcMessage } from '../../libs/protocol/src';
import type { ReplicaConfig } from '../config/gateway-config';
import type { UpstreamTarget } from '../telemetry/tracing/mcp-spans';
import type { MessageHeaders, UpstreamSink } from '../upstream/upstream-connection';

/**
 * What a session holds instead of an upstream connection (DESIGN §4). Behind it sit the
 * replica choice, the connection (dedicated, or a checkout from a shared pool), the recorded
 * client handshake that is replayed on another replica after a failure, the breakers and the
 * id remapping of pooled mode. The session never learns which replica or connection serves it.
 *
 * Contract: `send` never throws; a request that cannot be delivered is answered through the
 * sink with a JSON-RPC error. `upstreamClosed` on the sink means no replica can serve the
 * session any more.
 */
export interface UpstreamPort {
  sink: UpstreamSink | undefined;
  send(message: JsonRpcMessage, raw: string | undefined, headers?: MessageHeaders): void;
  /** Stop reading from the upstream (a slow client). */
  pause(): void;
  resume(): void;
  /**
   * Pooled mode: while request `id` waits for a checkout (pool exhausted), the longest it may
   * still wait (the acquire timeout); 0 once it is carried, answered or unknown. A transport
   * that can still refuse in its own terms (HTTP 429) holds its first bytes back meanwhile.
   */
  checkoutWait?(id: JsonRpcId): number;
  /**
   * True when the port names the client request of every message that belongs to one (pooled
   * mode attributes each message exactly): the session then never guesses "the one request in
   * flight" for the rest (list_changed, resources/updated), which belong to the standalone stream.
   */
  readonly attributesAll?: boolean;
  /** Where the upstream currently is (for trace attributes); undefined when not known. */
  target?(): UpstreamTarget | undefined;
  /** The session ended: let go of whatever serves it. Idempotent. */
  close(): void;
}

/** A replica as a trace target: its transport and, for network upstreams, its URL. */
export function upstreamTargetOf(replica: ReplicaConfig): UpstreamTarget {
  return { transport: replica.transport, url: 'url' in replica ? replica.url : undefined };
}
