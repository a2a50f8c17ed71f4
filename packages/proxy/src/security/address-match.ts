import { BlockList, isIP } from 'node:net';

/** A set of addresses, CIDRs and host-name patterns (`*.redis.svc`), parsed once. */
export interface AddressMatcher {
  /** True when the list is empty (everything matches). */
  readonly empty: boolean;
  /** True when `ip` (a literal IPv4/IPv6 address) is in one of the addresses or CIDRs. */
  matchesIp(ip: string): boolean;
  /** True when `host` (a name, not an IP) matches one of the host patterns. */
  matchesHostName(host: string): boolean;
}

/** One bad entry of an address list; `why` says what was expected. */
export class AddressListError extends Error {
  readonly entry: string;
  constructor(entry: string, why: string) {
    super(`"${entry}" ${why}`);
    this.entry = entry;
  }
}

const HOST_PATTERN = /^(?:\*|[A-Za-z0-9_-]+)(?:\.(?:\*|[A-Za-z0-9_-]+))*$/;

/**
 * Parse `entries`: IP addresses, CIDRs (`10.0.0.0/8`, `fd00::/8`) and, when `hostPatterns`, host
 * names where `*` stands for exactly one label. Throws AddressListError on the first bad entry.
 */
export function parseAddressList(
  entries: readonly string[],
  hostPatterns: boolean,
): AddressMatcher {
  const blocks = new BlockList();
  const patterns: RegExp[] = [];
  for (const raw of entries) {
    const e = raw.trim();
    const slash = e.indexOf('/');
    const ip = slash >= 0 ? e.slice(0, slash) : e;
    const family = isIP(ip);
    if (family !== 0) {
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (slash < 0) {
        blocks.addAddress(ip, type);
        continue;
      }
      const bitsText = e.slice(slash + 1);
      const bits = Number(bitsText);
      const max = family === 4 ? 32 : 128;
      if (!/^\d{1,3}$/.test(bitsText) || bits > max)
        throw new AddressListError(raw, `has a prefix length that is not 0..${max}`);
      blocks.addSubnet(ip, bits, type);
      continue;
    }
    if (!hostPatterns) throw new AddressListError(raw, 'is not an IP address or CIDR');
    if (slash >= 0 || !HOST_PATTERN.test(e))
      throw new AddressListError(
        raw,
        'is not an IP address, a CIDR or a host pattern such as *.redis.svc',
      );
    const re = e
      .toLowerCase()
      .split('.')
      .map((l) => (l === '*' ? '[a-z0-9_-]+' : l.replace(/[-]/g, '\\-')))
      .join('\\.');
    patterns.push(new RegExp(`^${re}$`));
  }
  const empty = entries.length === 0;
  return {
    empty,
    matchesIp(ip: string): boolean {
      const v = ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
      const family = isIP(v);
      if (family === 0) return false;
      return blocks.check(v, family === 4 ? 'ipv4' : 'ipv6');
    },
    matchesHostName(host: string): boolean {
      const h = host.toLowerCase().replace(/\.$/, '');
      return patterns.some((p) => p.test(h));
    },
  };
}
