import type { IncomingHttpHeaders } from 'node:http';
import { BlockList, isIP } from 'node:net';

/**
 * Which peers may speak for the client through `X-Forwarded-*`. A request that arrives
 * straight from a client must not be able to pick its own address (and so dodge a per-IP
 * cap) or the public URL the gateway names in its OAuth metadata; only a configured proxy
 * (a load balancer that terminates TLS, say) is believed.
 */
export class TrustedProxies {
  private readonly list = new BlockList();
  private readonly empty: boolean;

  /** `entries`: addresses or CIDR ranges, IPv4 or IPv6 (`10.0.0.0/8`, `::1`, `fd00::/8`). */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const [address, prefix] = entry.split('/');
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.list.addAddress(address, family);
      else this.list.addSubnet(address, Number(prefix), family);
    }
    this.empty = entries.length === 0;
  }

  /** Problems with a list of entries, for configuration validation (empty when all parse). */
  static problems(entries: readonly string[]): string[] {
    const problems: string[] = [];
    for (const entry of entries) {
      const [address, prefix, extra] = entry.split('/');
      const version = isIP(address);
      const bits = Number(prefix);
      if (
        version === 0 ||
        extra !== undefined ||
        (prefix !== undefined && (!Number.isInteger(bits) || bits < 0 || bits > (version === 6 ? 128 : 32)))
      ) {
        problems.push(`not an address or CIDR range: ${entry}`);
      }
    }
    return problems;
  }

  trusts(peer: string | undefined): boolean {
    if (this.empty || !peer) return false;
    const address = unmapped(peer);
    return this.list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
  }

  /**
   * The client's address: the socket peer, or — when the peer is a trusted proxy — the
   * right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its left
   * were written by the client and prove nothing).
   */
  clientAddress(peer: string | undefined, headers: IncomingHttpHeaders): string {
    const direct = peer ? unmapped(peer) : 'unknown';
    if (!this.trusts(direct)) return direct;
    const chain = headerList(headers['x-forwarded-for']);
    for (let i = chain.length - 1; i >= 0; i--) {
      const hop = unmapped(chain[i]);
      if (isIP(hop) === 0) return direct;
      if (!this.trusts(hop)) return hop;
    }
    return chain.length > 0 ? unmapped(chain[0]) : direct;
  }

  /**
   * Scheme and host the client used, for building public URLs: `X-Forwarded-Proto` and
   * `X-Forwarded-Host` only from a trusted proxy, otherwise the connection's own.
   */
  publicOrigin(
    peer: string | undefined,
    headers: IncomingHttpHeaders,
    encrypted: boolean,
  ): { proto: 'http' | 'https'; host: string | undefined } {
    let proto: 'http' | 'https' = encrypted ? 'https' : 'http';
    let host = typeof headers.host === 'string' ? headers.host : undefined;
    if (this.trusts(peer)) {
      const fwdProto = headerList(headers['x-forwarded-proto'])[0]?.toLowerCase();
      if (fwdProto === 'https' || fwdProto === 'http') proto = fwdProto;
      const fwdHost = headerList(headers['x-forwarded-host'])[0];
      if (fwdHost) host = fwdHost;
    }
    return { proto, host };
  }
}

/** `::ffff:127.0.0.1` → `127.0.0.1`, so one address has one spelling in caps and logs. */
function unmapped(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/** A comma-separated header (possibly repeated) as trimmed entries. */
function headerList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const joined = Array.isArray(value) ? value.join(',') : value;
  return joined
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
}
