import { STATUS_CODES, type IncomingHttpHeaders } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { ErrorCode } from '../../../libs/protocol/src/jsonrpc';
import type { GatewayConfig } from '../../config/gateway-config';
import { isLoopbackHost } from '../../core/loopback';
import type { Refusal } from '../../core/refusal';

export { isLoopbackHost };

/**
 * A host name as a Host header may carry it: labels of letters, digits, `-` and `_` (container
 * names use it) separated by single dots. No userinfo, no percent-encoding, no trailing dot.
 */
const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** A request the guard refuses (src/core/refusal.ts): 403 with JSON-RPC −32600. */
export interface GuardRefusal extends Refusal {
  status: 403;
  reason: 'forbidden_host' | 'forbidden_origin';
}

function forbidden(reason: GuardRefusal['reason'], message: string): GuardRefusal {
  return { refused: true, status: 403, code: ErrorCode.InvalidRequest, reason, message };
}

/**
 * Origin and Host validation (DNS-rebinding protection), shared by every HTTP transport.
 *
 * While the gateway listens on loopback, only loopback Host names are served and
 * localhost origins are allowed; configured lists extend that. On a public bind with no
 * host list, any Host is served (a reverse proxy in front is expected to pin it).
 */
export class RequestGuard {
  private readonly loopbackBind: boolean;
  private readonly allowedHosts: Set<string>;
  private readonly allowedOrigins: Set<string>;
  // The last Host and Origin values that passed: a client sends the same ones on every request,
  // so the parse and the BlockList lookup (a SocketAddress each) run once, not per request.
  private lastHost: string | undefined;
  private lastOrigin: string | undefined;

  constructor(config: Pick<GatewayConfig, 'host' | 'allowedHosts' | 'allowedOrigins'>) {
    this.loopbackBind = isLoopbackHost(config.host.toLowerCase());
    this.allowedHosts = new Set(config.allowedHosts.map((h) => h.toLowerCase()));
    this.allowedOrigins = new Set(config.allowedOrigins.map((o) => o.toLowerCase().replace(/\/$/, '')));
  }

  /** Undefined when the request may proceed; otherwise the refusal to send. */
  check(headers: IncomingHttpHeaders): GuardRefusal | undefined {
    const host = headers.host;
    if (host === undefined || host !== this.lastHost) {
      if (!this.hostAllowed(host)) {
        return forbidden('forbidden_host', `Forbidden: Host "${host ?? ''}" is not allowed`);
      }
      this.lastHost = host;
    }
    const origin = headers.origin;
    if (origin !== undefined && origin !== this.lastOrigin) {
      if (!this.originAllowed(origin)) {
        return forbidden('forbidden_origin', `Forbidden: Origin "${origin}" is not allowed`);
      }
      this.lastOrigin = origin;
    }
    return undefined;
  }

  private hostAllowed(host: string | undefined): boolean {
    if (!host) return !this.loopbackBind;
    const lower = host.toLowerCase();
    // Only a well-formed host [":" port] is compared at all: `127.0.0.1:80@evil.com` is none.
    const name = hostnameOf(lower);
    if (name === undefined) return false;
    if (this.allowedHosts.has(lower) || this.allowedHosts.has(name)) return true;
    if (this.loopbackBind) return isLoopbackHost(name);
    return this.allowedHosts.size === 0;
  }

  private originAllowed(origin: string): boolean {
    const lower = origin.toLowerCase().replace(/\/$/, '');
    if (this.allowedOrigins.has(lower) || this.allowedOrigins.has('*')) return true;
    if (!this.loopbackBind) return false;
    try {
      return isLoopbackHost(new URL(lower).hostname);
    } catch {
      return false;
    }
  }
}

/**
 * The host of a Host header value (lower case), parsed strictly as RFC 9110 §7.2 / RFC 3986 §3.2.2
 * define it: `host [":" port]`, an IPv6 literal in brackets, the port digits only, nothing else
 * (no userinfo, path, second colon or trailing garbage). Undefined when the value is not one.
 */
export function hostnameOf(value: string): string | undefined {
  let name: string;
  let rest: string;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    if (end === -1) return undefined;
    name = value.slice(0, end + 1);
    if (!isIPv6(name.slice(1, -1))) return undefined;
    rest = value.slice(end + 1);
  } else {
    const colon = value.indexOf(':');
    name = colon === -1 ? value : value.slice(0, colon);
    rest = colon === -1 ? '' : value.slice(colon);
    if (!isIPv4(name) && !HOST_NAME.test(name)) return undefined;
  }
  if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined;
  return name;
}

/**
 * What to warn about at start: on a non-loopback bind with no ALLOWED_HOSTS every Host header is
 * served, so DNS rebinding is only stopped if a reverse proxy in front pins the Host.
 */
export function hostCheckWarning(config: Pick<GatewayConfig, 'host' | 'allowedHosts'>): string | undefined {
  if (isLoopbackHost(config.host.toLowerCase()) || config.allowedHosts.length > 0) return undefined;
  return (
    `HOST=${config.host} is not loopback and ALLOWED_HOSTS is empty: any Host header is accepted, ` +
    'so browsers can reach the gateway through DNS rebinding. Set ALLOWED_HOSTS to the names clients use ' +
    '(e.g. ALLOWED_HOSTS=mcp.example.com,mcp.example.com:8443) unless a reverse proxy pins the Host.'
  );
}

/**
 * The same check in front of every route Fastify serves — /dashboard, /metrics, /health, /admin,
 * the OAuth metadata, even a 404 — so no page of the gateway answers a rebound name while /mcp
 * refuses it. The transports' own routes (raw routes and WebSocket upgrades) never reach Fastify
 * and make the check themselves, answering in their protocol; requests they hand back to Fastify
 * come through here. `refused` counts a refusal by kind (forbidden_host / forbidden_origin).
 */
export function installRequestGuard(
  fastify: FastifyInstance,
  config: Pick<GatewayConfig, 'host' | 'allowedHosts' | 'allowedOrigins'>,
  refused: (kind: 'forbidden_host' | 'forbidden_origin') => void,
): void {
  const guard = new RequestGuard(config);
  fastify.addHook('onRequest', (request, reply, done) => {
    const refusal = guard.check(request.headers);
    if (refusal === undefined) {
      done();
      return;
    }
    refused(refusal.reason);
    void reply
      .code(refusal.status)
      .header('cache-control', 'no-store')
      .send({ statusCode: refusal.status, error: STATUS_CODES[refusal.status], message: refusal.message });
  });
}
