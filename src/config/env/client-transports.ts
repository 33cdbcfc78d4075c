import { z } from 'zod';
import { bool, int } from '../schema-fields';
import { setting } from './setting';

/**
 * The client transports: the sessionless 2026-07-28 bridge, WebSocket, client backpressure, TLS and S2
 * transport switching.
 */
export const CLIENT_TRANSPORT_SETTINGS = {
  ENABLE_2026_07_28: setting({
    doc: 'Serve the sessionless 2026-07-28 revision of Streamable HTTP.',
    schema: bool,
    default: true,
  }),
  SESSIONLESS_MAX_BRIDGES: setting({
    doc:
      'Hidden upstream sessions the 2026-07-28 bridge keeps (one per client and service); past it ' +
      'the least recently used idle one is ended, and with none idle new clients get 503.',
    schema: int(1),
    default: 1000,
  }),
  SESSIONLESS_STATE_KEY: setting({
    doc:
      'HMAC key of the requestState the 2026-07-28 bridge mints for multi-round-trip requests; ' +
      'unset: a random key per process. Set the same key on every node of a cluster.',
    schema: z.string().min(32, 'use at least 32 characters'),
  }),
  SESSIONLESS_INPUT_TTL_MS: setting({
    doc:
      "How long a request answered with input_required waits for the client's retry (and its " +
      'requestState lives); then its upstream request is released with an error.',
    schema: int(100),
    default: 60_000,
  }),
  SESSIONLESS_INPUT_MAX_PER_CLIENT: setting({
    doc: 'Requests of one client that may wait for an input_required retry at once (more: 429).',
    schema: int(1),
    default: 16,
  }),
  WS_HEARTBEAT_INTERVAL_MS: setting({
    doc:
      'One shared ping interval for all WebSocket connections; a peer that missed the last pong is ' +
      'dropped.',
    schema: int(100),
    default: 30_000,
  }),
  WS_MAX_FRAME_BYTES: setting({
    doc: 'Largest WebSocket frame accepted (larger → close 1009); defaults to MAX_BODY_BYTES.',
    schema: int(1024),
  }),
  WS_COMPRESSION: setting({
    doc: 'permessage-deflate on WebSocket connections: off by default, it costs memory per connection.',
    schema: bool,
    default: false,
  }),
  WS_COMPRESSION_THRESHOLD_BYTES: setting({
    doc: 'Frames smaller than this are sent uncompressed even when compression is on.',
    schema: int(0),
    default: 1024,
  }),
  CHANNEL_HIGH_WATER_MARK_BYTES: setting({
    doc: 'Bytes a client connection may have buffered before the session pauses its upstream.',
    schema: int(1024),
    default: 1024 * 1024,
  }),
  TLS_CERT_FILE: setting({
    doc: 'PEM certificate (chain) file: when set with TLS_KEY_FILE, the one port speaks HTTPS and WSS.',
    schema: z.string(),
  }),
  TLS_KEY_FILE: setting({
    doc: 'PEM private key file.',
    schema: z.string(),
  }),
  TLS_CA_FILE: setting({
    doc: 'PEM CA bundle used to verify client certificates.',
    schema: z.string(),
  }),
  TLS_CLIENT_CERT: setting({
    doc: 'Client certificates: none, request (verify when sent) or require.',
    schema: z.enum(['none', 'request', 'require']),
    default: 'none',
  }),
  TLS_RELOAD_INTERVAL_MS: setting({
    doc:
      'How often the certificate files are checked for a renewal (ms); a change is loaded without ' +
      'restart.',
    schema: int(0),
    default: 60_000,
  }),
  S2_MAX_SWITCHES: setting({
    doc: 'S2 anti-oscillation: transport switches allowed per client within the window.',
    schema: int(0),
    default: 3,
  }),
  S2_WINDOW_MS: setting({
    doc: 'S2 anti-oscillation window (ms).',
    schema: int(1000),
    default: 60_000,
  }),
};
