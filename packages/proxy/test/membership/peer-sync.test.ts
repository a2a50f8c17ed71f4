import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cleanupAll,
  freePort,
  type RedisCluster,
  startRedisCluster,
  waitFor,
} from '@dcache/test-utils';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { MembershipHolder, seedDoc } from '../../src/membership/membership-holder.js';
import { MembershipManager } from '../../src/membership/membership-manager.js';
import { createMetrics } from '../../src/metrics.js';
import { PeerSync } from '../../src/peers/peer-sync.js';
import { type RunningServer, startServer } from '../../src/server.js';

const log = pino({ level: 'silent' });
let redis: RedisCluster;
const dir = mkdtempSync(join(tmpdir(), 'dcache-peers-'));
const servers: RunningServer[] = [];

beforeAll(async () => {
  redis = await startRedisCluster(3);
});
afterAll(async () => {
  await Promise.allSettled(servers.map((s) => s.close()));
  await cleanupAll();
  rmSync(dir, { recursive: true, force: true });
});

async function proxy(env: Record<string, string>): Promise<RunningServer> {
  const config = loadConfig({
    env: {
      DC_SERVER_HOST: '127.0.0.1',
      DC_SERVER_PORT: '0',
      DC_CACHE_ADDRESSES: redis.addresses.slice(0, 2).join(','),
      DC_HEALTH_INTERVAL: '5s',
      DC_HEALTH_TIMEOUT: '1s',
      DC_CLUSTER_SYNC_INTERVAL: '200ms',
      ...env,
    },
  });
  const s = await startServer(config, { log: pino({ level: 'silent' }) });
  servers.push(s);
  return s;
}

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON
async function json(url: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const r = await fetch(url, init);
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : undefined };
}

const admin = (token: string) => ({
  authorization: `Bearer ${token}`,
  'content-type': 'application/json',
});

describe('peer sync (in-process proxies, real sockets and Redis)', () => {
  it('without a cluster token: /internal answers 404 and no peer is contacted', async () => {
    let hits = 0;
    const trap: Server = createServer((_req, res) => {
      hits++;
      res.end('{}');
    });
    await new Promise<void>((r) => trap.listen(0, '127.0.0.1', r));
    const port = (trap.address() as { port: number }).port;
    try {
      const s = await proxy({ DC_CLUSTER_PEERS: `http://127.0.0.1:${port}` });
      const r = await json(`${s.url}/internal/v1/membership`, {
        headers: { authorization: 'Bearer anything' },
      });
      expect(r.status).toBe(404);
      const ring = await json(`${s.url}/api/v1/ring`);
      expect(ring.body.peer_sync).toBe('off');
      expect(ring.body.peers).toEqual([]);
      await new Promise((r) => setTimeout(r, 600)); // three sync intervals
      expect(hits).toBe(0);
    } finally {
      trap.close();
    }
  });

  it('a new proxy takes the ring from its peer, not from its own DC_CACHE_ADDRESSES', async () => {
    const a = await proxy({
      DC_CLUSTER_TOKEN: 't',
      DC_CLUSTER_NODE_ID: 'a',
      DC_CLUSTER_STATE_FILE: join(dir, 'a.json'),
    });
    const add = await json(`${a.url}/api/v1/ring/nodes`, {
      method: 'POST',
      headers: admin('x'),
      body: JSON.stringify({ address: redis.addresses[2] }),
    });
    expect(add.status).toBe(201);
    expect(add.body.nodes).toHaveLength(3);
    // D is seeded with one different node only; A's document wins at start.
    const d = await proxy({
      DC_CLUSTER_TOKEN: 't',
      DC_CLUSTER_NODE_ID: 'd',
      DC_CLUSTER_PEERS: a.url,
      DC_CACHE_ADDRESSES: '127.0.0.1:1',
      DC_CLUSTER_STATE_FILE: join(dir, 'd.json'),
    });
    expect(d.rt.holder.current.checksum).toBe(a.rt.holder.current.checksum);
    const ring = await json(`${d.url}/api/v1/ring`);
    expect(ring.body.seeded).toBe(false);
    expect(ring.body.nodes.map((n: { id: string }) => n.id)).not.toContain('127.0.0.1:1');
    // A learns D from D's exchanges (D's advertised URL) and lists it with its digest.
    await waitFor(
      async () => {
        const r = await json(`${a.url}/api/v1/ring`);
        return r.body.peers.some(
          (p: { id: string; in_sync: boolean; last_success: string | null }) =>
            p.id === 'd' && p.in_sync && p.last_success !== null,
        );
      },
      { timeout: 5_000, message: 'A to list D as an in-sync peer' },
    );
    // The seed node of D never reached A.
    expect(a.rt.holder.current.doc.entries['127.0.0.1:1']).toBeUndefined();
  });

  it('a peer with the wrong token is refused (403) and counted as failing; nothing changes', async () => {
    const port = await freePort();
    const good = await proxy({
      DC_CLUSTER_TOKEN: 'right',
      DC_CLUSTER_NODE_ID: 'good',
      DC_SERVER_PORT: String(port),
      // Its own URL among its seeds: recognised as itself and dropped.
      DC_CLUSTER_PEERS: `http://127.0.0.1:${port}`,
    });
    const before = good.rt.holder.current.checksum;
    const bad = await proxy({
      DC_CLUSTER_TOKEN: 'wrong',
      DC_CLUSTER_NODE_ID: 'bad',
      DC_CLUSTER_PEERS: good.url,
      DC_CACHE_ADDRESSES: '127.0.0.1:2',
    });
    await waitFor(
      async () => {
        const r = await json(`${bad.url}/api/v1/ring`);
        const p = r.body.peers[0];
        return p !== undefined && p.failures >= 2 && /403/.test(p.last_error ?? '');
      },
      { timeout: 5_000, message: 'the bad peer to record 403 failures' },
    );
    expect(good.rt.holder.current.checksum).toBe(before);
    const peers = (await json(`${good.url}/api/v1/ring`)).body.peers;
    expect(peers).toEqual([]); // itself dropped, the bad one never learned
    const metrics = await (await fetch(`${bad.url}/metrics`)).text();
    expect(metrics).toMatch(
      new RegExp(`dcache_peer_sync_failures_total\\{peer="${good.url}"\\} [1-9]`),
    );
  });

  it('oversized or malformed peer payloads answer 400 INVALID_MEMBERSHIP and change nothing', async () => {
    const s = await proxy({ DC_CLUSTER_TOKEN: 'k', DC_CLUSTER_NODE_ID: 'victim' });
    const before = s.rt.holder.current.checksum;
    const headers = { authorization: 'Bearer k', 'content-type': 'application/json' };
    const bodies = [
      `{"from":{"id":"x","url":""},"pad":"${'a'.repeat(4.5 * 1024 * 1024)}"}`,
      '{"from":',
      '"just a string"',
      JSON.stringify({ from: { id: 'x' }, doc: { entries: [] } }),
      JSON.stringify({
        from: { id: 'x' },
        peers: Array(300).fill('http://h:1'),
        doc: { entries: {} },
      }),
    ];
    for (const payload of bodies) {
      for (const url of ['/internal/v1/membership/sync', '/internal/v1/membership/digest']) {
        const r = await s.app.inject({ method: 'POST', url, headers, payload });
        expect(r.statusCode).toBe(400);
        expect(r.json().error.code).toBe('INVALID_MEMBERSHIP');
      }
    }
    // Without the token the body is not even read: 401 before any size or shape check.
    const r = await s.app.inject({
      method: 'POST',
      url: '/internal/v1/membership/sync',
      headers: { 'content-type': 'application/json' },
      payload: bodies[0] as string,
    });
    expect(r.statusCode).toBe(401);
    expect(s.rt.holder.current.checksum).toBe(before);
  });

  it('flags a peer that places keys with another hash', async () => {
    const m = await proxy({ DC_CLUSTER_TOKEN: 'h', DC_CLUSTER_NODE_ID: 'murmur' });
    const f = await proxy({
      DC_CLUSTER_TOKEN: 'h',
      DC_CLUSTER_NODE_ID: 'fnv',
      DC_CACHE_HASH: 'fnv1a_64',
      DC_CLUSTER_PEERS: m.url,
    });
    await waitFor(
      async () => (await json(`${f.url}/api/v1/ring`)).body.peers[0]?.placement === 'murmur',
      { timeout: 5_000, message: 'the peer placement to be known' },
    );
    const peer = (await json(`${f.url}/api/v1/ring`)).body.peers[0];
    expect(peer).toMatchObject({ id: 'murmur', placement_mismatch: true });
    // The same document everywhere (same checksum), mapped differently: that is what the flag is for.
    expect(peer.in_sync).toBe(true);
  });

  it('a change made while the peer is down reaches it by push retries, not by a round', async () => {
    const portB = await freePort();
    const urlB = `http://127.0.0.1:${portB}`;
    const holder = new MembershipHolder(seedDoc(redis.addresses.slice(0, 2)), { hash: 'murmur' });
    const metrics = createMetrics();
    const manager = new MembershipManager(holder, { writer: 'pusher', log, metrics });
    const sync = new PeerSync({
      manager,
      log,
      metrics,
      token: 'r',
      seeds: [urlB],
      interval: 600_000, // no second round during the test
      pushAttempts: 8,
    });
    // Without a runtime, forward changes to the sync as the runtime's listener does.
    holder.on('change', (c) => sync.changed(c.origin));
    try {
      sync.start('http://127.0.0.1:9');
      await waitFor(() => sync.list()[0]?.failures === 1, {
        timeout: 5_000,
        message: 'the first round to fail (B is not up yet)',
      });
      manager.addNode({ address: redis.addresses[2] as string });
      const b = await proxy({
        DC_CLUSTER_TOKEN: 'r',
        DC_CLUSTER_NODE_ID: 'pushed',
        DC_SERVER_PORT: String(portB),
        DC_CLUSTER_SYNC_INTERVAL: '600s',
      });
      await waitFor(() => b.rt.holder.current.checksum === holder.current.checksum, {
        timeout: 10_000,
        message: 'B to receive the change through a retried push',
      });
      // B applied it; the push that carried it completes when A reads B's reply.
      await waitFor(() => sync.list()[0]?.failures === 0, { timeout: 5_000 });
      const text = await metrics.register.metrics();
      const count = (result: string) =>
        Number(
          new RegExp(
            `dcache_peer_sync_total\\{peer="${urlB}",kind="push",result="${result}"\\} (\\d+)`,
          ).exec(text)?.[1] ?? 0,
        );
      expect(count('error')).toBeGreaterThanOrEqual(1);
      expect(count('ok')).toBeGreaterThanOrEqual(1);
      expect(sync.list()[0]).toMatchObject({ id: 'pushed', in_sync: true, failures: 0 });
    } finally {
      await sync.stop();
    }
  });

  it('forgets learned peers that never answer, keeps configured ones', async () => {
    const holder = new MembershipHolder(seedDoc(['h:1']), { hash: 'murmur' });
    const metrics = createMetrics();
    const manager = new MembershipManager(holder, { writer: 'f', log, metrics });
    const sync = new PeerSync({
      manager,
      log,
      metrics,
      token: 't',
      seeds: ['http://127.0.0.1:7/'],
      interval: 50,
      forgetAfter: 300,
    });
    try {
      sync.start('http://127.0.0.1:9');
      sync.heard({
        from: { id: 'other', url: 'http://127.0.0.1:8' },
        peers: ['http://127.0.0.1:6', 'http://127.0.0.1:9'], // the last one is this proxy
        seeded: false,
      });
      expect(sync.list().map((p) => p.url)).toEqual([
        'http://127.0.0.1:6',
        'http://127.0.0.1:7',
        'http://127.0.0.1:8',
      ]);
      await waitFor(() => sync.size === 1, { timeout: 5_000, message: 'learned peers forgotten' });
      expect(sync.list()[0]).toMatchObject({ url: 'http://127.0.0.1:7', seed: true });
      expect(sync.list()[0]?.failures).toBeGreaterThan(0);
    } finally {
      await sync.stop();
    }
  });
});
