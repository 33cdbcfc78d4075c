/** The gateway's client transports, named as the gateway names its channels. */
export type TransportKind = 'ws' | 'streamable' | 'sse';

export const ALL_TRANSPORTS: readonly TransportKind[] = ['ws', 'streamable', 'sse'];

/** Human names for messages and logs. */
export const TRANSPORT_LABEL: Record<TransportKind, string> = {
  ws: 'WebSocket',
  streamable: 'Streamable HTTP',
  sse: 'legacy HTTP+SSE',
};
