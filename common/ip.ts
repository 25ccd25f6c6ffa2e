// Address and name validation. Everything that reaches a command line goes through these first.
import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;

export interface Cidr {
  /** The address without prefix, in canonical text form. */
  address: string;
  prefix: number;
  family: Family;
}

/** Parses "198.18.0.100/24" or "2001:2::100/64". Returns an error string instead of throwing. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  if (slash < 0) return 'must be an address with a prefix length, like 198.18.0.100/24';
  const address = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return `prefix length "${prefixText}" is not a number`;
  const prefix = Number(prefixText);
  if (isIPv4(address)) {
    if (prefix < 1 || prefix > 32) return `IPv4 prefix length must be 1..32, got ${prefix}`;
    return { address, prefix, family: 4 };
  }
  if (isIPv6(address)) {
    // node:net accepts "fe80::1%eth0"; canonicalIPv6 would drop the zone without a word. The interface is its own field.
    if (address.includes('%')) return `"${address}" has a zone index (%...); give the interface separately`;
    if (prefix < 1 || prefix > 128) return `IPv6 prefix length must be 1..128, got ${prefix}`;
    return { address: canonicalIPv6(address), prefix, family: 6 };
  }
  return `"${address}" is not an IPv4 or IPv6 address`;
}

export function mustParseCidr(text: string): Cidr {
  const c = parseCidr(text);
  if (typeof c === 'string') throw new Error(`invalid CIDR ${JSON.stringify(text)}: ${c}`);
  return c;
}

export function formatCidr(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}

/** The eight 16-bit groups of an IPv6 address in text form (not the embedded-IPv4 form, ::ffff:1.2.3.4). */
export function ipv6Groups(address: string): number[] {
  const [head = '', tail] = address.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = tail !== undefined ? Math.max(0, 8 - h.length - t.length) : 0;
  return [...h, ...Array<string>(fill).fill('0'), ...t].map((g) => parseInt(g, 16));
}

/** Expands and re-compresses an IPv6 address so that equal addresses compare equal as strings. */
export function canonicalIPv6(address: string): string {
  // Embedded IPv4 (::ffff:1.2.3.4) keeps its text form; rare for VIPs, compare as-is.
  if (address.includes('.')) return address.toLowerCase();
  const groups = ipv6Groups(address).map((g) => g.toString(16));
  // Longest run of zeros (length >= 2) becomes '::' (RFC 5952).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < groups.length;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(':');
  const left = groups.slice(0, bestStart).join(':');
  const right = groups.slice(bestStart + bestLen).join(':');
  return `${left}::${right}`;
}

export function sameAddress(a: string, b: string): boolean {
  if (isIPv6(a) && isIPv6(b)) return canonicalIPv6(a) === canonicalIPv6(b);
  return a === b;
}

const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$/;
/** Linux interface names: 1..15 characters, no slash or whitespace. */
export function isInterfaceName(name: string): boolean {
  return IFNAME.test(name) && name !== '.' && name !== '..';
}

/** Kubernetes-style DNS-1123 subdomain, used for node and group names (they become etcd key segments). */
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
export function isResourceName(name: string): boolean {
  return NAME.test(name);
}
