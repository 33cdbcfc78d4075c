import { z } from 'zod';
import { CLIENT_NAME_PATTERN } from '../core/client-id';

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

/**
 * The prefixes of the ids the gateway gives names kept apart from the bare namespace, one per
 * mode (src/policy/client-names.ts): `mtls:ops` is the certificate `ops` when it is not client `ops`.
 */
const MODE_PREFIXES: readonly string[] = ['api_key:', 'jwt:', 'oauth:', 'mtls:', 'none:'];

/** Whether `id` has a mode prefix (only the gateway gives such ids; no credential list may claim one). */
export function isNamespaced(id: string): boolean {
  for (const prefix of MODE_PREFIXES) if (id.startsWith(prefix)) return true;
  return false;
}

/** A `clients:` key: a client name, a namespaced id (`mtls:<name>`, to give it rules), or `*`. */
export const CLIENT_KEY_PATTERN = /^(\*|((api_key|jwt|oauth|mtls|none):)?[A-Za-z0-9._:@|-]{1,128})$/;

/** The credential lists of a client entry, as the checks below read them. */
export interface ClientCredentialLists {
  apiKeys?: readonly string[];
  tokenSubjects?: readonly string[];
  certificateNames?: readonly string[];
}

/**
 * What `clients:` must not say about credentials (checked with the file at start-up and on every
 * edit, and at start-up for configuration given in code): a token subject or certificate name
 * listed by two clients, a name that is not a valid client name, credentials on `*` or on a
 * namespaced id (the gateway gives those ids; a list claiming one would let two identities share it).
 */
export function clientCredentialProblems(clients: Record<string, ClientCredentialLists>): string[] {
  const problems: string[] = [];
  const seen = { tokenSubjects: new Map<string, string>(), certificateNames: new Map<string, string>() };
  for (const [id, client] of Object.entries(clients)) {
    const listed =
      (client.apiKeys?.length ?? 0) +
      (client.tokenSubjects?.length ?? 0) +
      (client.certificateNames?.length ?? 0);
    if (listed > 0 && (id === ANY_CLIENT || isNamespaced(id))) {
      const why =
        id === ANY_CLIENT
          ? '"*" is the policy of clients without an entry, not a client'
          : `"${id}" is the id the gateway gives a name of the ${id.slice(0, id.indexOf(':'))} mode`;
      problems.push(`clients.${id}: ${why}; it cannot list apiKeys, tokenSubjects or certificateNames`);
    }
    for (const kind of ['tokenSubjects', 'certificateNames'] as const) {
      for (const name of client[kind] ?? []) {
        if (!CLIENT_NAME_PATTERN.test(name)) {
          problems.push(
            `clients.${id}.${kind}: "${name.slice(0, 140)}" is not a valid client name (1–128 of A–Z a–z 0–9 . _ : @ | -)`,
          );
          continue;
        }
        const other = seen[kind].get(name);
        if (other !== undefined)
          problems.push(`clients.${id}.${kind}: "${name}" is already listed by clients.${other}`);
        else seen[kind].set(name, id);
      }
    }
  }
  return problems;
}
