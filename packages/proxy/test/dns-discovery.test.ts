import { cleanupAll, startDnsServer, type TestDnsServer } from '@dcache/test-utils';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { MembershipHolder, seedDoc } from '../src/membership/membership-holder.js';
import { MembershipManager } from '../src/membership/membership-manager.js';
import { createMetrics, type Metrics } from '../src/metrics.js';
import {
  DnsDiscovery,
  parseDnsServers,
  parsePeersDns,
  peerUrl,
  selfAddresses,
} from '../src/peers/dns-discovery.js';
import { PeerSync } from '../src/peers/peer-sync.js';

const NAME = 'dcache-peers.test.svc.cluster.local';

/** Log lines a pino logger wrote, parsed. */
function capture(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'info' },
    { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) },
  );
  return { log, lines };
}

async function counter(metrics: Metrics, result: string): Promise<number> {
  const m = await metrics.peerDnsResolutions.get();
  return m.values.find((v) => v.labels.result === result)?.value ?? 0;
}

describe('DC_CLUSTER_PEERS_DNS settings', () => {
  it('parses name:port and refuses anything else, naming the setting', () => {
    expect(parsePeersDns(`${NAME}:8080`)).toEqual({ name: NAME, port: 8080 });
    expect(parsePeersDns('peers:1')).toEqual({ name: 'peers', port: 1 });
    for (const bad of [
      NAME,
      `${NAME}:0`,
      `${NAME}:65536`,
      `http://${NAME}:8080`,
      '10.0.0.1:8080',
      ':80',
    ]) {
      expect(() => parsePeersDns(bad), bad).toThrow();
      let err: unknown;
      try {
        loadConfig({ env: { DC_CLUSTER_PEERS_DNS: bad } });
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).setting).toBe('DC_CLUSTER_PEERS_DNS');
    }
    const cfg = loadConfig({ env: { DC_CLUSTER_PEERS_DNS: `${NAME}:8080` } });
    expect(cfg.cluster.peersDns).toBe(`${NAME}:8080`);
    expect(cfg.cluster.peersDnsInterval).toBe(5_000);
  });

  it('parses DNS servers and refuses names and bad ports, naming the setting', () => {
    expect(parseDnsServers(['10.0.0.10', '127.0.0.1:5353', '[fd00::a]:53', 'fd00::a'])).toEqual([
      '10.0.0.10',
      '127.0.0.1:5353',
      '[fd00::a]:53',
      'fd00::a',
    ]);
    for (const bad of ['dns.local', '10.0.0.1:0', '10.0.0.1:70000', '300.1.1.1']) {
      expect(() => parseDnsServers([bad]), bad).toThrow();
      expect(() => loadConfig({ env: { DC_CLUSTER_PEERS_DNS_SERVERS: bad } }), bad).toThrow(
        /DC_CLUSTER_PEERS_DNS_SERVERS/,
      );
    }
    expect(() => loadConfig({ env: { DC_CLUSTER_PEERS_DNS_INTERVAL: '10ms' } })).toThrow(
      /DC_CLUSTER_PEERS_DNS_INTERVAL/,
    );
  });

  it('own addresses: the bind address when it is one IP, else every interface address', () => {
    expect([...selfAddresses('127.0.0.2', '')]).toEqual(['127.0.0.2']);
    expect([...selfAddresses('127.0.0.2', 'http://10.1.2.3:8080')].sort()).toEqual([
      '10.1.2.3',
      '127.0.0.2',
    ]);
    const any = selfAddresses('0.0.0.0', '');
    expect(any.has('127.0.0.1')).toBe(true);
    expect(selfAddresses('::', '').has('127.0.0.1')).toBe(true);
    // A host name is not an address: every interface counts.
    expect(selfAddresses('localhost', 'http://dcache-0:8080').has('127.0.0.1')).toBe(true);
    expect(peerUrl('fd00::1', 8080)).toBe('http://[fd00::1]:8080');
    expect(peerUrl('10.0.0.1', 8080)).toBe('http://10.0.0.1:8080');
  });
});

describe('DnsDiscovery against a DNS server on loopback', () => {
  let dns: TestDnsServer;

  beforeAll(async () => {
    dns = await startDnsServer();
  });
  afterAll(cleanupAll);

  function discovery(self: string[], metrics: Metrics, log = pino({ level: 'silent' })) {
    return new DnsDiscovery({
      target: { name: NAME, port: 8080 },
      interval: 200,
      servers: [dns.address],
      self: new Set(self),
      log,
      metrics,
    });
  }

  it('A and AAAA records, own address left out; failures keep the last set and are counted', async () => {
    dns.mode('answer');
    dns.set(NAME, ['10.0.0.1', '10.0.0.2', '10.0.0.3', 'fd00::7']);
    const metrics = createMetrics();
    const { log, lines } = capture();
    const d = discovery(['10.0.0.2'], metrics, log);
    expect(await d.resolve()).toEqual([
      'http://10.0.0.1:8080',
      'http://10.0.0.3:8080',
      'http://[fd00::7]:8080',
    ]);
    expect(d.selfSeen).toBe('10.0.0.2');
    expect(await counter(metrics, 'ok')).toBe(1);
    expect((await metrics.peerDnsPeers.get()).values[0]?.value).toBe(3);

    dns.set(NAME, ['10.0.0.2', '10.0.0.3']);
    expect(await d.resolve()).toEqual(['http://10.0.0.3:8080']);
    expect(lines.some((l) => l.msg === 'peers from DNS changed')).toBe(true);

    // SERVFAIL, an unknown name and no record at all: the last good set stays.
    dns.mode('servfail');
    expect(await d.resolve()).toBeUndefined();
    dns.mode('answer');
    dns.set(NAME, []);
    expect(await d.resolve()).toBeUndefined();
    expect(d.urls).toEqual(['http://10.0.0.3:8080']);
    expect(await counter(metrics, 'error')).toBe(2);
    const warned = lines.filter(
      (l) => l.msg === 'peer DNS resolution failed: keeping the last known peers',
    );
    // One warning per streak of failures, naming the setting.
    expect(warned).toHaveLength(1);
    expect(warned[0]?.setting).toBe('DC_CLUSTER_PEERS_DNS');

    dns.set(NAME, ['10.0.0.2', '10.0.0.4']);
    expect(await d.resolve()).toEqual(['http://10.0.0.4:8080']);
    expect(lines.some((l) => l.msg === 'peer DNS resolution works again')).toBe(true);
  });

  it('a server that does not answer: a timeout keeps the set', async () => {
    dns.mode('answer');
    dns.set(NAME, ['10.0.0.1']);
    const metrics = createMetrics();
    const d = discovery([], metrics);
    expect(await d.resolve()).toEqual(['http://10.0.0.1:8080']);
    dns.mode('drop');
    expect(await d.resolve()).toBeUndefined();
    expect(d.urls).toEqual(['http://10.0.0.1:8080']);
    expect(await counter(metrics, 'error')).toBe(1);
    dns.mode('answer');
  });

  it('resolutions before the metrics exist are counted once attached', async () => {
    dns.set(NAME, ['10.0.0.1']);
    const d = new DnsDiscovery({
      target: { name: NAME, port: 8080 },
      interval: 200,
      servers: [dns.address],
      self: new Set(),
      log: pino({ level: 'silent' }),
    });
    await d.resolve();
    const metrics = createMetrics();
    d.attach(metrics);
    expect(await counter(metrics, 'ok')).toBe(1);
    expect((await metrics.peerDnsPeers.get()).values[0]?.value).toBe(1);
  });

  it('start() reports each change of the set on the interval', async () => {
    dns.set(NAME, ['10.0.0.1']);
    const d = discovery([], createMetrics());
    await d.resolve();
    const seen: (readonly string[])[] = [];
    d.start((urls) => seen.push(urls));
    dns.set(NAME, ['10.0.0.1', '10.0.0.9']);
    const t0 = Date.now();
    while (seen.length === 0 && Date.now() - t0 < 20_000)
      await new Promise((r) => setTimeout(r, 20));
    d.stop();
    expect(seen[0]).toEqual(['http://10.0.0.1:8080', 'http://10.0.0.9:8080']);
  });
});

describe("a proxy the name lists only later (a new pod's record comes late)", () => {
  let dns: TestDnsServer;
  beforeAll(async () => {
    dns = await startDnsServer();
  });
  afterAll(cleanupAll);

  it('onSelf reports its address once listed; PeerSync then advertises it', async () => {
    dns.set(NAME, ['10.0.0.1']);
    const d = new DnsDiscovery({
      target: { name: NAME, port: 8080 },
      interval: 200,
      servers: [dns.address],
      self: new Set(['10.0.0.2']),
      log: pino({ level: 'silent' }),
      metrics: createMetrics(),
    });
    await d.resolve();
    expect(d.selfSeen).toBeUndefined();
    const selves: string[] = [];
    d.start(
      () => {},
      (a) => selves.push(a),
    );
    dns.set(NAME, ['10.0.0.1', '10.0.0.2']);
    const t0 = Date.now();
    while (selves.length === 0 && Date.now() - t0 < 20_000)
      await new Promise((r) => setTimeout(r, 20));
    d.stop();
    expect(selves).toEqual(['10.0.0.2']);

    const holder = new MembershipHolder(seedDoc(['h:1']), { hash: 'murmur' });
    const metrics = createMetrics();
    const log = pino({ level: 'silent' });
    const manager = new MembershipManager(holder, { writer: 'me', log, metrics });
    const s = new PeerSync({ manager, log, metrics, token: 't', seeds: [], interval: 60_000 });
    s.start('');
    expect(s.envelope().from.url).toBe('');
    s.advertise(peerUrl(selves[0] as string, 8080));
    expect(s.envelope().from.url).toBe('http://10.0.0.2:8080');
    // Its own URL, named by a peer, is never learned as a peer.
    s.heard({
      from: { id: 'b', url: 'http://10.0.0.1:8080' },
      peers: ['http://10.0.0.2:8080'],
      seeded: false,
    });
    expect(s.list().map((p) => p.url)).toEqual(['http://10.0.0.1:8080']);
    await s.stop();
  });
});

describe('PeerSync with DNS-listed peers', () => {
  function sync() {
    const holder = new MembershipHolder(seedDoc(['h:1']), { hash: 'murmur' });
    const metrics = createMetrics();
    const log = pino({ level: 'silent' });
    const manager = new MembershipManager(holder, { writer: 'me', log, metrics });
    return new PeerSync({
      manager,
      log,
      metrics,
      token: 't',
      seeds: ['http://10.0.0.1:8080'],
      interval: 60_000,
    });
  }

  it('DNS peers join and leave; a configured one stays; one that left is not re-learned from gossip', async () => {
    const s = sync();
    s.setDiscovered(['http://10.0.0.1:8080', 'http://10.0.0.2:8080', 'http://10.0.0.3:8080'], true);
    const view = () => s.list().map((p) => [p.url, p.seed, p.dns]);
    expect(view()).toEqual([
      ['http://10.0.0.1:8080', true, true],
      ['http://10.0.0.2:8080', false, true],
      ['http://10.0.0.3:8080', false, true],
    ]);
    // Listed peers count for freshness at start, as seeds do: not fresh until met.
    expect(s.leaseUntil()).toBe(Number.NEGATIVE_INFINITY);

    s.setDiscovered(['http://10.0.0.2:8080']);
    expect(view()).toEqual([
      ['http://10.0.0.1:8080', true, false],
      ['http://10.0.0.2:8080', false, true],
    ]);
    // Another peer still names 10.0.0.3 (it met it a moment ago): not learned again.
    s.heard({
      from: { id: 'b', url: 'http://10.0.0.2:8080' },
      peers: ['http://10.0.0.3:8080'],
      seeded: false,
    });
    expect(view().map((v) => v[0])).not.toContain('http://10.0.0.3:8080');
    // A peer nobody removed is still learned from gossip.
    s.heard({
      from: { id: 'b', url: 'http://10.0.0.2:8080' },
      peers: ['http://10.0.0.5:8080'],
      seeded: false,
    });
    expect(view().map((v) => v[0])).toContain('http://10.0.0.5:8080');

    // Back in DNS: a peer again.
    s.setDiscovered(['http://10.0.0.2:8080', 'http://10.0.0.3:8080']);
    expect(view()).toContainEqual(['http://10.0.0.3:8080', false, true]);
    await s.stop();
  });
});
