export {
  DEFAULT_CLIENT_ID_HEADER,
  ResilientClientTransport,
  type DisconnectEvent,
  type FailoverEvent,
  type ReconnectEvent,
  type ReconnectOptions,
  type ResilientClientTransportOptions,
  type ResilientTransportStats,
} from './resilient-transport';
export { ResilientTransportError, type FailureReason } from './errors';
export { backoffDelay, type BackoffOptions } from './backoff';
export { SseParser, type SseHandler } from '@mcp-gateway/protocol';
export { SeqSet, SequencedInbox, type InboxVerdict } from './sequence-tracker';
export { PendingRequests, type PendingRequest, type PendingState } from './pending-requests';
export {
  ALL_TRANSPORTS,
  TRANSPORT_LABEL,
  type FetchLike,
  type TransportKind,
  type WebSocketConstructor,
  type WebSocketLike,
} from './wire';
