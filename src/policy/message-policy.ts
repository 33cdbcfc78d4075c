import type { IncomingHttpHeaders } from 'node:http';
import { z } from 'zod';
import {
  ErrorCode,
  errorResponse,
  type JsonRpcFailure,
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcRequest,
} from '../../libs/protocol/src/jsonrpc';
import { ANONYMOUS_CLIENT } from '../core/client-id';
import type { Refusal } from '../core/refusal';
import { compileAccess, type ClientAccess } from './authorization/access-rules';
import { allowed, filterListAnswer, filtersList, targetOf } from './authorization/authorizer';
import {
  ANY_CLIENT,
  ClientPolicySchema,
  RateSchema,
  type ClientPolicies,
  type ClientPolicy,
} from '../config/client-policy-schema';
import { RateLimiter, type LimitSource, type RateVerdict } from './rate-limit/rate-limiter';
import type { SharedLimiter } from './rate-limit/shared-limiter';
import type { RateLimit } from './rate-limit/token-bucket';
import type { TrustedProxies } from '../core/trusted-proxies';

/** Where a refusal is counted: the client transports, and the Nest controllers (RateLimitGuard). */
export type PolicyEntry = 'streamable' | 'sse' | 'ws' | 'admin';

/** The counters the policy bumps (GatewayMetrics has them). */
export interface PolicyCounters {
  rateLimited: Record<PolicyEntry, number>;
  authorizationDenied: Record<PolicyEntry, number>;
  listEntriesFiltered: number;
}

/**
 * A message the policy refuses (src/core/refusal.ts): the JSON-RPC error to answer with, and for
 * HTTP the status and headers of the whole response (Streamable HTTP POST). WebSocket and legacy
 * SSE answer in-band. `status` is 429 for a rate limit (with `Retry-After`, `RateLimit-Policy`,
 * `RateLimit`), 200 for an authorization refusal (a JSON-RPC-level answer, see README).
 */
export interface PolicyRefusal extends Refusal {
  data: Record<string, unknown>;
  reason: 'rate_limited' | 'forbidden';
}

export interface RateLimitSettings {
  /** Rate limits on (the default, whatever the authentication mode). */
  enabled: boolean;
  perSecond: number;
  burst: number;
}

/**
 * The bucket of a client: its id, or `#<address>` for the anonymous one. A named id that itself
 * starts with `#` gets a second one, so no client can name itself into an address's bucket.
 */
function bucketKey(clientId: string, address: string | undefined): string {
  if (clientId === ANONYMOUS_CLIENT) return addressKey(address ?? 'unknown');
  return clientId.charCodeAt(0) === 35 ? `#${clientId}` : clientId;
}

// Anonymous clients mostly arrive from one address (loopback, a proxy): the last address's key is
// kept so a request does not build the same string again (and hash a fresh one in the bucket Map).
let lastAddress = '';
let lastAddressKey = '#';

function addressKey(address: string): string {
  if (address !== lastAddress) {
    lastAddress = address;
    lastAddressKey = `#${address}`;
  }
  return lastAddressKey;
}

/** The JSON-RPC answer to a refused request. */
export function refusalResponse(refusal: PolicyRefusal, id: JsonRpcId | null): JsonRpcFailure {
  return errorResponse(id, refusal.code, refusal.message, refusal.data);
}

/** S5 `policy_update('gateway', constraints)`: the keys this policy reads. */
const ConstraintsSchema = z.object({
  rateLimit: RateSchema.optional(),
  /** Per-client entries replacing the ones of the same id; `null` removes one. */
  clients: z.record(ClientPolicySchema.nullable()).optional(),
});

interface CompiledClient {
  rateLimit: RateLimit | undefined;
  toolLimits: Map<string, RateLimit> | undefined;
  access: ClientAccess | undefined;
}

function rateOf(r: { perSecond?: number; burst?: number }, fallback: RateLimit): RateLimit {
  const perSecond = r.perSecond ?? fallback.perSecond;
  if (r.burst !== undefined) return { perSecond, burst: r.burst };
  if (r.perSecond === undefined) return { perSecond, burst: fallback.burst };
  // The burst defaults to one second's worth; a limit of 0 grants nothing at all.
  return { perSecond, burst: perSecond === 0 ? 0 : Math.max(1, Math.ceil(perSecond)) };
}

/**
 * The per-message policy every transport asks right before `session.receive(...)`: the client's
 * rate limit (a synchronous token bucket) and its tool/resource/prompt authorization; it also
 * filters list answers for clients with rules. Plain TypeScript: a check is a few Map lookups.
 */
export class MessagePolicy implements LimitSource {
  readonly limiter: RateLimiter;
  private defaultLimit: RateLimit;
  private clients: ClientPolicies = {};
  private compiled = new Map<string, CompiledClient>();
  /** S3 adjust_rate_limit overrides (requests per second), above every configured limit. */
  private readonly adjusted = new Map<string, RateLimit>();
  /** Any client has tool, resource or prompt rules (false: the authorization step is skipped). */
  private anyAccess = false;
  /** Any client has per-tool limits. */
  private anyToolLimits = false;

  constructor(
    private readonly settings: RateLimitSettings,
    clients: ClientPolicies,
    private readonly counters: PolicyCounters,
    private readonly proxies: TrustedProxies,
    shared?: SharedLimiter,
  ) {
    this.defaultLimit = { perSecond: settings.perSecond, burst: settings.burst };
    this.limiter = new RateLimiter(this, shared);
    this.setClients(clients);
  }

  get enabled(): boolean {
    return this.settings.enabled;
  }

  /** The address an anonymous client is limited by (the socket peer, or X-Forwarded-For from a trusted proxy). */
  addressOf(peer: string | undefined, headers: IncomingHttpHeaders): string {
    return this.proxies.clientAddress(peer, headers);
  }

  /**
   * One client message. Only requests are checked (not notifications, not responses to the
   * server's requests). `address` is consulted only for the anonymous client id.
   */
  check(
    clientId: string,
    message: JsonRpcMessage,
    entry: PolicyEntry,
    address?: string,
  ): PolicyRefusal | undefined {
    const request = message as JsonRpcRequest;
    if (request.method === undefined || request.id === undefined) return undefined;
    const key = bucketKey(clientId, address);
    const now = Date.now();
    if (this.settings.enabled) {
      const verdict = this.limiter.take(key, clientId, undefined, now);
      if (verdict !== undefined) return this.rateLimited(verdict, entry);
    }
    if (!this.anyAccess && !this.anyToolLimits) return undefined;
    const client = this.compiled.get(clientId) ?? this.compiled.get(ANY_CLIENT);
    if (client === undefined) return undefined;
    if (client.access !== undefined) {
      const target = targetOf(request);
      if (target !== undefined && !allowed(client.access, target)) {
        this.counters.authorizationDenied[entry]++;
        const what = target.kind === 'resource' ? 'Resource' : target.kind === 'tool' ? 'Tool' : 'Prompt';
        return {
          code: ErrorCode.InvalidParams,
          message: `${what} "${target.name}" is not allowed for this client`,
          refused: true,
          status: 200,
          data: { reason: 'forbidden', [target.kind]: target.name },
          reason: 'forbidden',
        };
      }
    }
    if (this.settings.enabled && client.toolLimits !== undefined && request.method === 'tools/call') {
      const tool = (request.params as { name?: unknown } | undefined)?.name;
      if (typeof tool === 'string' && client.toolLimits.has(tool)) {
        const verdict = this.limiter.take(`${key} tool:${tool}`, clientId, tool, now);
        if (verdict !== undefined) return this.rateLimited(verdict, entry);
      }
    }
    return undefined;
  }

  /** One request outside MCP (an admin API call through RateLimitGuard): the client's rate limit only. */
  take(clientId: string, entry: PolicyEntry, address?: string): PolicyRefusal | undefined {
    if (!this.settings.enabled) return undefined;
    const key = bucketKey(clientId, address);
    const verdict = this.limiter.take(key, clientId, undefined, Date.now());
    return verdict === undefined ? undefined : this.rateLimited(verdict, entry);
  }

  /** Whether the answer to a `method` request of `clientId` must be filtered (list methods, clients with rules). */
  filtersAnswer(clientId: string, method: string): boolean {
    if (!this.anyAccess) return false;
    const access = (this.compiled.get(clientId) ?? this.compiled.get(ANY_CLIENT))?.access;
    return access !== undefined && filtersList(access, method);
  }

  /** The filtered answer's text, or undefined to send the upstream's bytes unchanged. */
  filterAnswer(clientId: string, method: string, response: JsonRpcMessage): string | undefined {
    const access = (this.compiled.get(clientId) ?? this.compiled.get(ANY_CLIENT))?.access;
    if (access === undefined) return undefined;
    const filtered = filterListAnswer(access, method, response);
    if (filtered === undefined) return undefined;
    this.counters.listEntriesFiltered += filtered.removed;
    return filtered.text;
  }

  // ------------------------------------------------------------------ live changes

  /** S3 adjust_rate_limit: `newLimit` requests per second (burst the same), from the client's next request. */
  adjustRateLimit(clientId: string, newLimit: number): boolean {
    if (!Number.isFinite(newLimit) || newLimit < 0) return false;
    this.adjusted.set(clientId, {
      perSecond: newLimit,
      burst: newLimit === 0 ? 0 : Math.max(1, Math.ceil(newLimit)),
    });
    this.limiter.limitsChanged(clientId);
    return true;
  }

  /**
   * S5 policy_update('gateway', constraints): `rateLimit` replaces the default limit, `clients`
   * replaces the entries it names (null removes one). Returns the problems when it is refused.
   */
  applyConstraints(constraints: Record<string, unknown>): string[] {
    const parsed = ConstraintsSchema.safeParse(constraints);
    if (!parsed.success)
      return parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    const { rateLimit, clients } = parsed.data;
    if (rateLimit) this.defaultLimit = rateOf(rateLimit, this.defaultLimit);
    if (clients) {
      const next: ClientPolicies = { ...this.clients };
      for (const [id, policy] of Object.entries(clients)) {
        if (policy === null) delete next[id];
        else next[id] = policy;
      }
      this.setClients(next);
    } else if (rateLimit) {
      this.setClients(this.clients);
    }
    return [];
  }

  /** Replaces every client's policy (configuration at start, S5). */
  setClients(clients: ClientPolicies): void {
    this.clients = clients;
    const compiled = new Map<string, CompiledClient>();
    let anyAccess = false;
    let anyToolLimits = false;
    for (const [id, policy] of Object.entries(clients)) {
      const c = this.compile(policy);
      compiled.set(id, c);
      anyAccess ||= c.access !== undefined;
      anyToolLimits ||= c.toolLimits !== undefined;
    }
    this.compiled = compiled;
    this.anyAccess = anyAccess;
    this.anyToolLimits = anyToolLimits;
    this.limiter.limitsChanged();
  }

  /** LimitSource: the limit of a client (or of one of its tools). */
  limitFor(clientId: string, tool: string | undefined): { limit: RateLimit; policy: RateVerdict['policy'] } {
    const client = this.compiled.get(clientId) ?? this.compiled.get(ANY_CLIENT);
    if (tool !== undefined) {
      const limit = client?.toolLimits?.get(tool);
      if (limit) return { limit, policy: 'tool' };
    }
    const adjusted = this.adjusted.get(clientId);
    if (adjusted) return { limit: adjusted, policy: 'client' };
    if (client?.rateLimit) return { limit: client.rateLimit, policy: 'client' };
    return { limit: this.defaultLimit, policy: 'default' };
  }

  close(): void {
    this.limiter.close();
  }

  private compile(policy: ClientPolicy): CompiledClient {
    const r = policy.rateLimit;
    let toolLimits: Map<string, RateLimit> | undefined;
    if (r?.tools) {
      toolLimits = new Map();
      for (const [tool, limit] of Object.entries(r.tools))
        toolLimits.set(tool, rateOf(limit, this.defaultLimit));
    }
    return {
      rateLimit:
        r && (r.perSecond !== undefined || r.burst !== undefined) ? rateOf(r, this.defaultLimit) : undefined,
      toolLimits,
      access: compileAccess(policy),
    };
  }

  private rateLimited(verdict: RateVerdict, entry: PolicyEntry): PolicyRefusal {
    this.counters.rateLimited[entry]++;
    const { perSecond, burst } = verdict.limit;
    const seconds = Math.max(1, Math.ceil(verdict.retryAfterMs / 1000));
    const window = Math.max(1, Math.round(burst / Math.max(perSecond, 1e-9)));
    const name = verdict.policy;
    return {
      refused: true,
      code: ErrorCode.RateLimited,
      message: verdict.unavailable
        ? `Rate limiter unavailable (its shared store cannot be reached and the gateway fails closed); retry in ${verdict.retryAfterMs} ms`
        : `Rate limit exceeded: ${perSecond} requests per second (burst ${burst}); retry in ${verdict.retryAfterMs} ms`,
      status: 429,
      headers: {
        'retry-after': String(seconds),
        // draft-ietf-httpapi-ratelimit-headers: structured-field lists, one named policy each.
        'ratelimit-policy': `"${name}";q=${burst};w=${window}`,
        ratelimit: `"${name}";r=0;t=${seconds}`,
      },
      retryAfterMs: verdict.retryAfterMs,
      data: { retryAfterMs: verdict.retryAfterMs, limit: perSecond, burst },
      reason: 'rate_limited',
    };
  }
}
