/**
 * DC_CLUSTER_PEERS_DNS with real proxy processes: three proxies on 127.0.0.11-13 (same port, as
 * pods behind a headless Service) find each other through a DNS server on loopback, one leaves
 * the answer (its pod went away) and is forgotten, DNS fails and the peers stay, and it comes back.
 */

import { createServer } from 'node:net';
import {
  CI_SAFE_ENV,
  cleanupAll,
  freePort,
  PROXY_MAIN,
  type RedisCluster,
  startDnsServer,
  startProcess,
  startRedisCluster,
  type TestDnsServer,
  type TestProcess,
  waitFor,
} from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const NAME = 'dcache-peers.dcache.svc.cluster.local';
const ADMIN = 'adm-dns-discovery-test-token';
const HOSTS = ['127.0.0.11', '127.0.0.12', '127.0.0.13'] as const;
const WAIT = { timeout: 60_000, interval: 100 };

interface Proxy {
  name: string;
  host: string;
  url: string;
  env: Record<string, string>;
  proc: TestProcess;
}

/** Whether this host can bind 127.0.0.11-13 (Linux: all of 127/8; macOS only with lo0 aliases). */
async function loopbackAliases(): Promise<boolean> {
  for (const host of HOSTS) {
    const ok = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(0, host, () => srv.close(() => resolve(true)));
    });
    if (!ok) return false;
  }
  return true;
}
const CAN_BIND = await loopbackAliases();

let redis: RedisCluster;
let dns: TestDnsServer;
let port: number;
const proxies: Proxy[] = [];

async function launch(name: string, host: string): Promise<Proxy> {
  const url = `http://${host}:${port}`;
  const env: Record<string, string> = {
    ...CI_SAFE_ENV,
    DC_CONFIG: '',
    DC_SERVER_HOST: host,
    DC_SERVER_PORT: String(port),
    DC_LOGGER_LEVEL: 'info',
    DC_CACHE_ADDRESSES: redis.addresses.slice(0, 2).join(','),
    DC_ADMIN_TOKEN: ADMIN,
    DC_CLUSTER_TOKEN: 'cluster-dns-discovery-test',
    DC_CLUSTER_NODE_ID: name,
    DC_CLUSTER_SYNC_INTERVAL: '200ms',
    DC_CLUSTER_PEERS_DNS: `${NAME}:${port}`,
    DC_CLUSTER_PEERS_DNS_SERVERS: dns.address,
    DC_CLUSTER_PEERS_DNS_INTERVAL: '200ms',
  };
  const proc = await startProcess(process.execPath, [PROXY_MAIN], {
    env,
    readyUrl: `${url}/health/live`,
    readyTimeout: 30_000,
  });
  return { name, host, url, env, proc };
}

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON fields
async function json(url: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

interface PeerView {
  url: string;
  id: string | null;
  dns: boolean;
  in_sync: boolean;
}

async function peersOf(p: Proxy): Promise<PeerView[]> {
  return (await json(`${p.url}/api/v1/ring`)).body.peers as PeerView[];
}

/** `p` lists exactly `others` as DNS peers, each met (its id known) and holding p's ring. */
async function seesExactly(p: Proxy, others: Proxy[]): Promise<boolean> {
  try {
    const peers = await peersOf(p);
    const want = others.map((o) => o.url).sort();
    return (
      JSON.stringify(peers.map((x) => x.url).sort()) === JSON.stringify(want) &&
      peers.every((x) => x.dns && x.in_sync && others.some((o) => o.name === x.id))
    );
  } catch {
    return false;
  }
}

async function metric(p: Proxy, line: RegExp): Promise<number> {
  const r = await fetch(`${p.url}/metrics`, { signal: AbortSignal.timeout(30_000) });
  const m = line.exec(await r.text());
  return m ? Number(m[1]) : Number.NaN;
}

async function ringIds(p: Proxy): Promise<string[]> {
  const body = (await json(`${p.url}/api/v1/ring`)).body;
  return (body.nodes as { id: string }[]).map((n) => n.id).sort();
}

beforeAll(async () => {
  if (!CAN_BIND) return;
  redis = await startRedisCluster(3);
  dns = await startDnsServer();
  port = await freePort();
  dns.set(NAME, [...HOSTS]);
  proxies.push(...(await Promise.all(HOSTS.map((h, i) => launch(`proxy-${'abc'[i]}`, h)))));
}, 90_000);

afterAll(async () => {
  await Promise.all(proxies.map((p) => p.proc.stop()));
  await cleanupAll();
});

// A visible skip where the addresses cannot be bound (macOS without `ifconfig lo0 alias`).
describe.skipIf(!CAN_BIND)(
  'peer discovery by DNS (real proxy processes, DNS server on loopback)',
  () => {
    it('proxies find each other, leave when they leave DNS, keep peers while DNS fails, and come back', async () => {
      const [a, b, c] = proxies as [Proxy, Proxy, Proxy];
      for (const p of proxies) {
        await waitFor(
          () =>
            seesExactly(
              p,
              proxies.filter((o) => o !== p),
            ),
          {
            ...WAIT,
            message: `${p.name} to list the other two from DNS`,
          },
        );
      }
      // Each advertises the address the name lists for it (not its host name).
      expect(a.proc.output()).toContain(`"self":"${a.url}"`);
      expect(await metric(a, /^dcache_peer_dns_peers (\d+)/m)).toBe(2);

      // A ring change on A reaches the others through the discovered peers.
      const third = redis.addresses[2] as string;
      const added = await json(`${a.url}/api/v1/ring/nodes`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ address: third }),
      });
      expect(added.status).toBe(201);
      for (const p of [b, c]) {
        await waitFor(async () => (await ringIds(p)).includes(third), {
          ...WAIT,
          message: `${p.name} to receive the added node`,
        });
      }

      // C's pod goes away: out of DNS, process stopped. A and B forget it (not after minutes).
      dns.set(NAME, [a.host, b.host]);
      expect(await c.proc.stop()).toBe(0);
      for (const [p, other] of [
        [a, b],
        [b, a],
      ] as const) {
        await waitFor(() => seesExactly(p, [other]), {
          ...WAIT,
          message: `${p.name} to forget ${c.name}`,
        });
      }
      expect(a.proc.output()).toContain('no longer in DNS (DC_CLUSTER_PEERS_DNS)');
      expect(await metric(a, /^dcache_peer_dns_peers (\d+)/m)).toBe(1);

      // A change made while C is away.
      const removed = await json(`${a.url}/api/v1/ring/nodes/${encodeURIComponent(third)}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${ADMIN}` },
      });
      expect(removed.status).toBe(200);
      await waitFor(async () => !(await ringIds(b)).includes(third), {
        ...WAIT,
        message: 'B to receive the removal',
      });

      // DNS fails: the peers stay, the failures are counted and logged.
      const errorsBefore = await metric(
        a,
        /^dcache_peer_dns_resolutions_total\{result="error"\} (\d+)/m,
      );
      dns.mode('servfail');
      await waitFor(
        async () =>
          (await metric(a, /^dcache_peer_dns_resolutions_total\{result="error"\} (\d+)/m)) >
          errorsBefore + 2,
        { ...WAIT, message: 'A to count failed resolutions' },
      );
      expect(await seesExactly(a, [b])).toBe(true);
      expect(a.proc.output()).toContain('peer DNS resolution failed: keeping the last known peers');
      dns.mode('answer');

      // C comes back at the same address: found again, and it catches up with the ring.
      const c2 = await launch(c.name, c.host);
      proxies[2] = c2;
      dns.set(NAME, [...HOSTS]);
      for (const p of proxies) {
        await waitFor(
          () =>
            seesExactly(
              p,
              proxies.filter((o) => o !== p),
            ),
          {
            ...WAIT,
            message: `${p.name} to list the other two again`,
          },
        );
      }
      expect(await ringIds(c2)).toEqual(await ringIds(a));
      expect(await ringIds(c2)).not.toContain(third);
      const ready = await fetch(`${c2.url}/health/ready`);
      expect(ready.status).toBe(200);
    });
  },
);
