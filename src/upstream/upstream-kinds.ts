import type { ReplicaConfig } from '../config/gateway-config';
import type { UpstreamKindName } from '../config/upstream-kinds';
import { EmbeddedUpstream } from './embedded.upstream';
import { SseUpstream } from './sse.upstream';
import { StdioUpstream } from './stdio.upstream';
import { StreamableHttpUpstream } from './streamable-http.upstream';
import type { UpstreamConnection } from './upstream-connection';
import type { UpstreamOptions } from './upstream-options';
import { WsUpstream } from './ws.upstream';

/** Builds the connection for one replica of a kind. */
export type UpstreamConstructor<K extends UpstreamKindName> = new (
  replica: Extract<ReplicaConfig, { transport: K }>,
  options: UpstreamOptions,
) => UpstreamConnection;

/**
 * The upstream half of the upstream-kind registry: the connection class that serves each kind,
 * keyed by the `transport` names src/config/upstream-kinds.ts declares with their fields. The
 * mapped type makes the compiler refuse a declared kind without a connection here, or an entry
 * for a kind the configuration does not accept.
 */
export const UPSTREAM_CONNECTIONS: { readonly [K in UpstreamKindName]: UpstreamConstructor<K> } = {
  'streamable-http': StreamableHttpUpstream,
  sse: SseUpstream,
  ws: WsUpstream,
  stdio: StdioUpstream,
  embedded: EmbeddedUpstream,
};
