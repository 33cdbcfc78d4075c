import type { IncomingHttpHeaders } from 'node:http';
import type { GatewayConfig } from '../../config/gateway-config';

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

export interface GuardRefusal {
  status: 403 | 421;
  message: string;
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

  constructor(config: Pick<GatewayConfig, 'host' | 'allowedHosts' | 'allowedOrigins'>) {
    this.loopbackBind = LOOPBACK_NAMES.has(config.host) || config.host.startsWith('127.');
    this.allowedHosts = new Set(config.allowedHosts.map((h) => h.toLowerCase()));
    this.allowedOrigins = new Set(config.allowedOrigins.map((o) => o.toLowerCase().replace(/\/$/, '')));
  }

  /** Undefined when the request may proceed; otherwise the refusal to send. */
  check(headers: IncomingHttpHeaders): GuardRefusal | undefined {
    const host = headers.host;
    if (!this.hostAllowed(host)) {
      return { status: 403, message: `Forbidden: Host "${host ?? ''}" is not allowed` };
    }
    const origin = headers.origin;
    if (origin !== undefined && !this.originAllowed(origin)) {
      return { status: 403, message: `Forbidden: Origin "${origin}" is not allowed` };
    }
    return undefined;
  }

  private hostAllowed(host: string | undefined): boolean {
    if (!host) return !this.loopbackBind;
    const lower = host.toLowerCase();
    if (this.allowedHosts.has(lower) || this.allowedHosts.has(stripPort(lower))) return true;
    if (this.loopbackBind) return LOOPBACK_NAMES.has(stripPort(lower)) || stripPort(lower).startsWith('127.');
    return this.allowedHosts.size === 0;
  }

  private originAllowed(origin: string): boolean {
    const lower = origin.toLowerCase().replace(/\/$/, '');
    if (this.allowedOrigins.has(lower) || this.allowedOrigins.has('*')) return true;
    if (!this.loopbackBind) return false;
    try {
      const url = new URL(lower);
      return LOOPBACK_NAMES.has(url.hostname) || LOOPBACK_NAMES.has(`[${url.hostname}]`);
    } catch {
      return false;
    }
  }
}

function stripPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.lastIndexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}
