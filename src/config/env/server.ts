import { z } from 'zod';
import { TrustedProxies } from '../../core/trusted-proxies';
import { LOG_LEVEL_NAMES } from '../log-level-names';
import { bool, csv, int } from '../schema-fields';
import { setting } from './setting';

/**
 * Where the gateway listens, its gateway.yaml and admin token, and what a request may carry and where
 * it may come from.
 */
export const SERVER_SETTINGS = {
  HOST: setting({
    doc: 'Interface to listen on. Loopback by default: exposing the gateway is a deliberate choice.',
    schema: z.string(),
    default: '127.0.0.1',
  }),
  PORT: setting({
    doc: 'TCP port (0 picks a free one).',
    schema: int(0, 65535),
    default: 3000,
  }),
  LOG_LEVEL: setting({
    doc: 'pino level: fatal, error, warn, info, debug, trace, silent.',
    schema: z.enum(LOG_LEVEL_NAMES),
    default: 'info',
  }),
  GATEWAY_CONFIG: setting({
    doc: 'Path of gateway.yaml; when unset, the CLI (`npm start`) uses ./gateway.yaml if it exists.',
    schema: z.string(),
  }),
  GATEWAY_CONFIG_WATCH: setting({
    doc: 'Watch gateway.yaml and apply valid edits to services and replicas live.',
    schema: bool,
    default: true,
  }),
  GATEWAY_CONFIG_POLL_MS: setting({
    doc:
      'Interval of the stat poll that backs up the file watch (fs.watch misses some editors and ' +
      'mounts); 0 = off.',
    schema: int(0),
    default: 2000,
  }),
  ADMIN_TOKEN: setting({
    doc: 'Bearer token of the admin API under /admin/; when unset the admin API is off (404).',
    schema: z.string().min(16, 'use at least 16 characters'),
  }),
  MAX_BODY_BYTES: setting({
    doc: 'Largest accepted HTTP request body in bytes (larger → 413).',
    schema: int(1024),
    default: 4 * 1024 * 1024,
  }),
  MAX_JSON_DEPTH: setting({
    doc:
      'Deepest nesting of arrays and objects accepted in a client message (a batch counts as one ' +
      'level); deeper → −32600 (HTTP 400). Keeps every later JSON.stringify clear of stack ' +
      'overflow.',
    schema: int(2, 100_000),
    default: 64,
  }),
  ALLOWED_ORIGINS: setting({
    doc:
      'Origins allowed to call the gateway from a browser, besides localhost ones while bound to ' +
      'loopback.',
    schema: csv,
    default: [],
  }),
  ALLOWED_HOSTS: setting({
    doc:
      'Host header values accepted (DNS-rebinding protection); empty = loopback names while bound ' +
      'to loopback.',
    schema: csv,
    default: [],
  }),
  TRUSTED_PROXIES: setting({
    doc: 'Peers (addresses or CIDR ranges) whose X-Forwarded-For/-Proto/-Host are believed; none by default.',
    schema: csv.superRefine((entries, ctx) => {
      for (const message of TrustedProxies.problems(entries))
        ctx.addIssue({ code: z.ZodIssueCode.custom, message });
    }),
    default: [],
  }),
};
