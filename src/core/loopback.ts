/** Loopback addresses: what the configuration defaults and the Host/Origin guard both ask. */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

/** Loopback as IP literals only: 127.0.0.0/8 and ::1 (a name such as `127.evil.example` is not). */
const LOOPBACK_ADDRESSES = new BlockList();
LOOPBACK_ADDRESSES.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK_ADDRESSES.addAddress('::1', 'ipv6');

/** `localhost`, or an IP literal in 127.0.0.0/8 or ::1 (IPv6 with or without brackets). */
export function isLoopbackHost(name: string): boolean {
  if (name === 'localhost') return true;
  if (isIPv4(name)) return LOOPBACK_ADDRESSES.check(name, 'ipv4');
  const v6 = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
  return isIPv6(v6) && LOOPBACK_ADDRESSES.check(v6, 'ipv6');
}
