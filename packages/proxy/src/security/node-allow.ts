import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { envName } from '../config.js';
import { type AddressMatcher, parseAddressList } from './address-match.js';

/** Every address a host name resolves to (`dns.lookup` with `all: true`). */
export type LookupAll = (host: string) => Promise<LookupAddress[]>;

/** The system resolver (`/etc/hosts`, then DNS), as every connection of the proxy uses it. */
export const systemLookupAll: LookupAll = (host) =>
  new Promise((resolve, reject) => {
    dnsLookup(host, { all: true }, (err, addresses) => (err ? reject(err) : resolve(addresses)));
  });

/** Whether a node address may get a connection (and the Redis credentials), and why. */
export interface AllowDecision {
  allowed: boolean;
  /** The rule that allowed it, or why it is refused (shown in logs and to admins). */
  reason: string;
  /**
   * Allowed because every address its host name resolved to is inside the listed IPs and CIDRs:
   * each connection resolves the name again and checks the addresses (`connectLookup`), so that a
   * name that later resolves elsewhere gets no connection.
   */
  resolved?: boolean;
}

const SETTING = envName('cache.allowed_addresses');

/** `host:port` or `[v6]:port` → host; undefined when there is no port separator. */
function hostOf(address: string): string | undefined {
  const i = address.lastIndexOf(':');
  if (i <= 0) return undefined;
  let host = address.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return host === '' ? undefined : host;
}

/**
 * The node allow-list (`cache.allowed_addresses`: IPs, CIDRs and host patterns such as
 * `*.redis.svc`). An address is allowed when the list is empty; or its host is an IP literal inside
 * a listed IP or CIDR; or its host name matches a host pattern; or, for another host name when the
 * list holds IPs or CIDRs, every address the name resolves to is inside them. Pure apart from the
 * resolver, which tests replace.
 */
export class NodeAllowList {
  /** The list is empty: every address is allowed. */
  readonly empty: boolean;
  private readonly matcher: AddressMatcher;
  private readonly hasIpEntries: boolean;
  private readonly lookupAll: LookupAll;

  /** Throws AddressListError on a bad entry (config validation refuses those at start). */
  constructor(entries: readonly string[], lookupAll: LookupAll = systemLookupAll) {
    this.matcher = parseAddressList(entries, true);
    this.empty = this.matcher.empty;
    this.hasIpEntries = entries.some((e) => isIP(e.trim().split('/')[0] ?? '') !== 0);
    this.lookupAll = lookupAll;
  }

  /** The decision when the address alone settles it; undefined when its host must be resolved. */
  decideNow(address: string): AllowDecision | undefined {
    if (this.empty) return { allowed: true, reason: `${SETTING} is empty` };
    const host = hostOf(address);
    if (host === undefined) return { allowed: false, reason: `${address} is not host:port` };
    if (isIP(host) !== 0) {
      return this.matcher.matchesIp(host)
        ? { allowed: true, reason: `${host} is inside ${SETTING}` }
        : { allowed: false, reason: `${host} is outside ${SETTING}` };
    }
    if (this.matcher.matchesHostName(host))
      return { allowed: true, reason: `${host} matches a host pattern of ${SETTING}` };
    if (!this.hasIpEntries)
      return { allowed: false, reason: `${host} matches no host pattern of ${SETTING}` };
    return undefined;
  }

  /** Decide for `address` (`host:port`), resolving a host name when the list needs it. */
  async decide(address: string): Promise<AllowDecision> {
    const now = this.decideNow(address);
    if (now) return now;
    const host = hostOf(address) as string;
    let addrs: LookupAddress[];
    try {
      addrs = await this.lookupAll(host);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      return {
        allowed: false,
        reason: `${host} matches no host pattern of ${SETTING} and cannot be resolved (${code})`,
      };
    }
    return this.judgeResolved(host, addrs);
  }

  private judgeResolved(host: string, addrs: readonly LookupAddress[]): AllowDecision {
    if (addrs.length === 0)
      return { allowed: false, reason: `${host} resolves to no address (${SETTING})` };
    const outside = addrs.find((a) => !this.matcher.matchesIp(a.address));
    if (outside)
      return {
        allowed: false,
        reason: `${host} resolves to ${outside.address}, outside ${SETTING}`,
      };
    return {
      allowed: true,
      reason: `every address of ${host} (${addrs.map((a) => a.address).join(', ')}) is inside ${SETTING}`,
      resolved: true,
    };
  }

  /**
   * A `lookup` for `net.connect`/`tls.connect`: resolves like `dns.lookup`, but fails the
   * connection (before a byte is sent) when the name now resolves to an address outside the list.
   */
  readonly connectLookup: LookupFunction = (hostname, options, callback) => {
    this.lookupAll(hostname).then(
      (all) => {
        const d = this.judgeResolved(hostname, all);
        if (!d.allowed) {
          const err: NodeJS.ErrnoException = new Error(`address not allowed: ${d.reason}`);
          err.code = 'ENODENOTALLOWED';
          callback(err, '');
          return;
        }
        const family =
          options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family;
        const fit = family ? all.filter((a) => a.family === family) : all;
        if (options.all) {
          callback(null, fit);
          return;
        }
        const first = fit[0];
        if (!first) {
          const err: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
          err.code = 'ENOTFOUND';
          callback(err, '');
          return;
        }
        callback(null, first.address, first.family);
      },
      (e: NodeJS.ErrnoException) => callback(e, ''),
    );
  };
}
