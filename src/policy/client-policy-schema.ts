import { z } from 'zod';

/**
 * The per-client policy fields of gateway.yaml's top-level `clients:` section (rate limits and
 * authorization). Kept as a field map so the authentication fields (`apiKeys`, …) can be spread
 * into the same client object:
 *
 *   clients:
 *     alice:
 *       rateLimit: { perSecond: 20, burst: 40, tools: { slow_tool: { perSecond: 1 } } }
 *       tools: { allow: ['echo', 'get_*'], deny: ['get_secret'] }
 *       resources: { deny: ['file:///etc/*'] }
 *       prompts: { allow: ['*'] }
 *     '*': { rateLimit: { perSecond: 50 } }   # any client without an entry of its own
 */

/** A rate: requests per second refilled, and how many may be spent at once (defaults to perSecond). */
export const RateSchema = z
  .object({
    /** Requests per second (0 refuses every request). */
    perSecond: z.number().min(0).max(1_000_000),
    /** Tokens the bucket holds at most: the burst allowed after a quiet spell. */
    burst: z.number().int().min(1).max(10_000_000).optional(),
  })
  .strict();

export const ClientRateLimitSchema = RateSchema.extend({
  perSecond: RateSchema.shape.perSecond.optional(),
  /** Limits of single tools (exact names), on top of the client's own limit. */
  tools: z.record(RateSchema).optional(),
}).strict();

/** Allow and deny glob patterns (`*`, `?`); deny wins, an absent allow list allows everything. */
export const AccessPatternsSchema = z
  .object({
    allow: z.array(z.string().min(1)).optional(),
    deny: z.array(z.string().min(1)).optional(),
  })
  .strict();

export const clientPolicyFields = {
  /** Overrides the default rate limit (RATE_LIMIT_PER_SECOND / RATE_LIMIT_BURST) for this client. */
  rateLimit: ClientRateLimitSchema.optional(),
  /** Tool names the client may call and see in tools/list. */
  tools: AccessPatternsSchema.optional(),
  /** Resource URIs (and templates) the client may read, subscribe to and see listed. */
  resources: AccessPatternsSchema.optional(),
  /** Prompt names the client may get and see in prompts/list. */
  prompts: AccessPatternsSchema.optional(),
};

export const ClientPolicySchema = z.object(clientPolicyFields).strict();
export type ClientPolicy = z.infer<typeof ClientPolicySchema>;

/** The `clients:` section: client id (or `*` for every client without an entry) → its policy. */
export const ClientsSchema = z.record(ClientPolicySchema);
export type ClientPolicies = z.infer<typeof ClientsSchema>;

/** The client entry that applies to every client without an entry of its own. */
export const ANY_CLIENT = '*';
