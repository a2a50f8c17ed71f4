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
import { type RunningServer, startServer } from '../../src/server.js';

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
});
