/** Node addresses: "host:port" parsing and node ids. */

export interface ParsedAddress {
  host: string;
  port: number;
}

const MAX_ADDRESS = 255;

/**
 * Parse `"host:port"` (IPv6 as `"[::1]:6379"`). Throws a TypeError naming the
 * problem for anything else; port must be 1..65535.
 */
export function parseAddress(address: string): ParsedAddress {
  if (typeof address !== 'string') throw new TypeError('address must be a string "host:port"');
  const shown = JSON.stringify(address.length > 80 ? `${address.slice(0, 80)}…` : address);
  if (address.length === 0) throw new TypeError('address is empty; expected "host:port"');
  if (address.length > MAX_ADDRESS) {
    throw new TypeError(`address ${shown} is longer than ${MAX_ADDRESS} characters`);
  }
  let host: string;
  let portText: string;
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    if (close < 0 || address[close + 1] !== ':') {
      throw new TypeError(`address ${shown} is not "[ipv6]:port"`);
    }
    host = address.slice(1, close);
    portText = address.slice(close + 2);
    if (!/^[0-9a-fA-F:.]+$/.test(host) || !host.includes(':')) {
      throw new TypeError(`address ${shown} has an invalid IPv6 host`);
    }
  } else {
    const colon = address.lastIndexOf(':');
    if (colon < 0) throw new TypeError(`address ${shown} has no port; expected "host:port"`);
    host = address.slice(0, colon);
    portText = address.slice(colon + 1);
    if (host.includes(':')) {
      throw new TypeError(`address ${shown}: write IPv6 hosts in brackets, e.g. "[::1]:6379"`);
    }
    if (host.length === 0) throw new TypeError(`address ${shown} has an empty host`);
    // Hostnames, IPv4 literals: letters, digits, '-', '.', '_'.
    if (!/^[A-Za-z0-9._-]+$/.test(host)) {
      throw new TypeError(`address ${shown} has an invalid host ${JSON.stringify(host)}`);
    }
  }
  if (!/^[0-9]{1,5}$/.test(portText)) {
    throw new TypeError(`address ${shown} has an invalid port ${JSON.stringify(portText)}`);
  }
  const port = Number(portText);
  if (port < 1 || port > 65535) {
    throw new TypeError(`address ${shown}: port ${port} is outside 1..65535`);
  }
  return { host, port };
}

/** Canonical `"host:port"` for an address (IPv6 in brackets); the default node id. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The node id for an address: its canonical `"host:port"` form (port without
 * leading zeros). Throws like `parseAddress`. With plain `host:port` server lines
 * this is also the name twemproxy hashes (except port 11211, which twemproxy drops
 * from the name for libmemcached compatibility).
 */
export function nodeIdFor(address: string): string {
  const { host, port } = parseAddress(address);
  return formatAddress(host, port);
}
