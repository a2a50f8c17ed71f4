import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics.js';

/** A `cluster.peers_dns` value: the name to resolve and the port every peer listens on. */
export interface PeersDnsTarget {
  name: string;
  port: number;
}

const NAME_RE = /^([A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?):(\d{1,5})$/;

/** Parse `name:port` (`dcache-peers.ns.svc.cluster.local:8080`); throws an Error saying why not. */
export function parsePeersDns(value: string): PeersDnsTarget {
  const m = NAME_RE.exec(value.trim());
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65_535)
    throw new Error(
      `"${value}" is not name:port (e.g. dcache-peers.default.svc.cluster.local:8080)`,
    );
  const name = m[1] as string;
  if (isIP(name) !== 0)
    throw new Error(
      `"${value}" names an address: give a DNS name, or list peers in DC_CLUSTER_PEERS`,
    );
  return { name, port };
}

/** Validate DNS servers (`10.0.0.10`, `10.0.0.10:53`, `[fd00::a]:53`) in the form `Resolver.setServers` takes. */
export function parseDnsServers(list: readonly string[]): string[] {
  return list.map((raw) => {
    const s = raw.trim();
    const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?$/.exec(s);
    const v4 = /^([0-9.]+)(?::(\d{1,5}))?$/.exec(s);
    const host = v6?.[1] ?? (isIP(s) === 6 ? s : v4?.[1]);
    const port = v6?.[2] ?? (isIP(s) === 6 ? undefined : v4?.[2]);
    if (
      host === undefined ||
      isIP(host) === 0 ||
      (port !== undefined && (+port < 1 || +port > 65_535))
    )
      throw new Error(`"${raw}" is not an IP address with an optional :port`);
    return s;
  });
}

/** The base URL of a peer at `address` (IPv6 in brackets). */
export function peerUrl(address: string, port: number): string {
  return isIP(address) === 6 ? `http://[${address}]:${port}` : `http://${address}:${port}`;
}

const WILDCARDS = new Set(['', '0.0.0.0', '::', '[::]']);

/**
 * The addresses that are this proxy, to leave out of the name's answer: the bind address when it
 * is one IP (several proxies on one host, each on its own address); otherwise every address of
 * the host's interfaces (in a pod: the pod IP and loopback). The advertised URL's host counts too
 * when it is an address. A proxy that still reaches itself is dropped by peer sync (same node id).
 */
export function selfAddresses(host: string, advertiseUrl: string): Set<string> {
  const out = new Set<string>();
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIP(bare) !== 0 && !WILDCARDS.has(host)) out.add(bare);
  else
    for (const list of Object.values(networkInterfaces()))
      for (const a of list ?? []) out.add(a.address.replace(/%.*$/, ''));
  if (advertiseUrl !== '') {
    try {
      const h = new URL(advertiseUrl).hostname.replace(/^\[|\]$/g, '');
      if (isIP(h) !== 0) out.add(h);
    } catch {
      // validated by config: unreachable
    }
  }
  return out;
}

/** Options of DnsDiscovery. */
export interface DnsDiscoveryOptions {
  target: PeersDnsTarget;
  /** Resolution interval (ms). */
  interval: number;
  /** DNS servers to ask (empty: the system's resolver configuration). */
  servers: readonly string[];
  /** Addresses that are this proxy (see selfAddresses). */
  self: ReadonlySet<string>;
  log: Logger;
  /** Where resolutions are counted; attach() sets it when the metrics exist only later. */
  metrics?: Metrics;
}

/** Error codes of a resolution that say "no record of this family", not "DNS failed". */
const NO_DATA = new Set(['ENODATA', 'ENOTFOUND']);

/**
 * Resolves `cluster.peers_dns` (A and AAAA) on an interval; every address but this proxy's is a
 * peer at `http://address:port`. A failed or empty resolution keeps the last good set (logged
 * once per streak, counted in dcache_peer_dns_resolutions_total{result="error"}): a DNS outage
 * must not make a proxy forget its peers.
 */
export class DnsDiscovery {
  private readonly opts: DnsDiscoveryOptions;
  private readonly resolver: Resolver;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failures = 0;
  private metrics: Metrics | undefined;
  /** Resolutions made before metrics were attached. */
  private readonly pending = { ok: 0, error: 0 };
  /** The last good set of peer URLs (sorted). */
  urls: readonly string[] = [];
  /** The first of this proxy's own addresses the name listed (its pod IP), if any. */
  selfSeen: string | undefined;

  constructor(opts: DnsDiscoveryOptions) {
    this.opts = opts;
    this.metrics = opts.metrics;
    const timeout = Math.max(100, Math.min(2_000, Math.floor(opts.interval / 2)));
    this.resolver = new Resolver({ timeout, tries: 2 });
    if (opts.servers.length > 0) this.resolver.setServers([...opts.servers]);
  }

  /** Resolve once; the new peer URLs, or undefined when the resolution failed (last set kept). */
  async resolve(): Promise<readonly string[] | undefined> {
    const { name, port } = this.opts.target;
    const [v4, v6] = await Promise.allSettled([
      this.resolver.resolve4(name),
      this.resolver.resolve6(name),
    ]);
    const addresses: string[] = [];
    const errors: string[] = [];
    for (const r of [v4, v6]) {
      if (r.status === 'fulfilled') addresses.push(...r.value);
      else {
        const code = (r.reason as NodeJS.ErrnoException).code ?? '';
        if (!NO_DATA.has(code)) errors.push(`${code || 'error'}: ${(r.reason as Error).message}`);
      }
    }
    if (this.stopped) return undefined;
    // No address at all is never the truth for a name this proxy itself belongs to: keep the set.
    if (errors.length > 0 || addresses.length === 0) {
      this.failed(errors.length > 0 ? errors.join('; ') : `${name} has no A or AAAA record`);
      return undefined;
    }
    this.count('ok');
    if (this.failures > 0)
      this.opts.log.info({ name, failures: this.failures }, 'peer DNS resolution works again');
    this.failures = 0;
    const mine = addresses.filter((a) => this.opts.self.has(a));
    this.selfSeen ??= mine[0];
    const urls = [
      ...new Set(addresses.filter((a) => !this.opts.self.has(a)).map((a) => peerUrl(a, port))),
    ].sort();
    const before = new Set(this.urls);
    const added = urls.filter((u) => !before.has(u));
    const gone = this.urls.filter((u) => !urls.includes(u));
    if (added.length > 0 || gone.length > 0)
      this.opts.log.info({ name, added, gone, peers: urls.length }, 'peers from DNS changed');
    this.urls = urls;
    this.metrics?.peerDnsPeers.set(urls.length);
    return urls;
  }

  private count(result: 'ok' | 'error'): void {
    if (this.metrics) this.metrics.peerDnsResolutions.inc({ result });
    else this.pending[result]++;
  }

  /** Count in `metrics` from now on (and the resolutions made before). */
  attach(metrics: Metrics): void {
    this.metrics = metrics;
    for (const result of ['ok', 'error'] as const)
      if (this.pending[result] > 0)
        metrics.peerDnsResolutions.inc({ result }, this.pending[result]);
    this.pending.ok = 0;
    this.pending.error = 0;
    metrics.peerDnsPeers.set(this.urls.length);
  }

  private failed(why: string): void {
    this.failures++;
    this.count('error');
    if (this.failures === 1 || this.failures % 30 === 0)
      this.opts.log.warn(
        {
          setting: 'DC_CLUSTER_PEERS_DNS',
          name: this.opts.target.name,
          failures: this.failures,
          err: why,
          kept: this.urls.length,
        },
        'peer DNS resolution failed: keeping the last known peers',
      );
  }

  /**
   * Resolve every interval from now on; `onChange` gets each new set of peer URLs, `onSelf` the
   * first of this proxy's addresses the name lists, if it listed none so far.
   */
  start(onChange: (urls: readonly string[]) => void, onSelf?: (address: string) => void): void {
    const round = async () => {
      const before = this.urls;
      const selfBefore = this.selfSeen;
      const got = await this.resolve().catch(() => undefined);
      if (this.stopped) return;
      if (selfBefore === undefined && this.selfSeen !== undefined) onSelf?.(this.selfSeen);
      if (got && (got.length !== before.length || got.some((u, i) => u !== before[i])))
        onChange(got);
      this.timer = setTimeout(round, this.opts.interval);
      this.timer.unref();
    };
    this.timer = setTimeout(round, this.opts.interval);
    this.timer.unref();
  }

  /** Stop resolving (a round in flight is ignored). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
