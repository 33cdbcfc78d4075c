import { z } from 'zod';
import { bool, int } from '../schema-fields';
import { setting } from './setting';

/** Rate limits (per-client defaults; gateway.yaml overrides them per client) and their shared Redis store. */
export const RATE_LIMIT_SETTINGS = {
  RATE_LIMIT_ENABLED: setting({
    doc: 'Per-client rate limits on every transport (on by default, whatever the authentication mode).',
    schema: bool,
    default: true,
  }),
  RATE_LIMIT_PER_SECOND: setting({
    doc:
      'Requests per second each client may send (token bucket refill rate); overridable per client ' +
      'in gateway.yaml.',
    schema: z.coerce.number().min(0).max(1_000_000),
    default: 100,
  }),
  RATE_LIMIT_BURST: setting({
    doc:
      'Requests a client may send at once after a quiet spell (the bucket size); defaults to ' +
      'RATE_LIMIT_PER_SECOND.',
    schema: int(1, 10_000_000),
  }),
  REDIS_URL: setting({
    doc:
      'Redis shared by every gateway node: rate limits are then enforced cluster-wide ' +
      "(rate-limiter-flexible's Redis store).",
    schema: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
  }),
  RATE_LIMIT_REDIS_FAIL_MODE: setting({
    doc:
      'While Redis is unreachable: `open` = each node limits alone (in-memory insurance limiter), ' +
      '`closed` = refuse every request.',
    schema: z.enum(['open', 'closed']),
    default: 'open',
  }),
  RATE_LIMIT_SYNC_MS: setting({
    doc:
      'How often each node reports what it granted to Redis and learns what the cluster has left ' + '(ms).',
    schema: int(1, 10_000),
    default: 50,
  }),
};
