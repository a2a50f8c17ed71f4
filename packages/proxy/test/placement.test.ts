import { Ring } from '@dcache/ring';
import { cleanupAll, type RedisCluster, startRedisCluster } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, type TestProxy } from './helpers.js';

let cluster: RedisCluster;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
});

afterAll(async () => {
  await cleanupAll();
});

/**
 * For each key, the fixture nodes that hold it: every node's whole key set (KEYS is fine on a
 * test node), plus EXISTS on every node for a sample, the way a client of one node would look.
 */
async function holders(keys: readonly string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(keys.map((k) => [k, []]));
  for (const n of cluster.nodes) {
    const held = (await n.command('KEYS', '*')) as string[];
    for (const k of held) out.get(k)?.push(n.address);
  }
  const sample = keys.filter((_, i) => i % 10 === 0);
  await Promise.all(
    sample.map(async (k) => {
      const on: string[] = [];
      for (const n of cluster.nodes) if ((await n.command('EXISTS', k)) === 1) on.push(n.address);
      expect(on, k).toEqual(out.get(k));
    }),
  );
  return out;
}

async function withProxy(env: Record<string, string>, fn: (p: TestProxy) => Promise<void>) {
  await Promise.all(cluster.nodes.map((n) => n.flush()));
  const p = await startProxy(cluster.addresses, env);
  try {
    await fn(p);
  } finally {
    await p.close();
  }
}

describe('placement', () => {
  it('puts every key on exactly the node Ring(murmur).owner names, and every node holds keys', async () => {
    await withProxy({}, async (p) => {
      const keys = Array.from({ length: 300 }, (_, i) => `place:${i}:${'x'.repeat(i % 7)}`);
      for (let i = 0; i < keys.length; i += 30) {
        const res = await Promise.all(
          keys
            .slice(i, i + 30)
            .map((k) =>
              p.req('PUT', `/api/v1/cache/${encodeURIComponent(k)}`, { json: { value: k } }),
            ),
        );
        for (const r of res) expect(r.status).toBe(200);
      }
      const ring = new Ring(
        cluster.addresses.map((id) => ({ id })),
        { hash: 'murmur' },
      );
      const where = await holders(keys);
      const perNode = new Map<string, number>();
      for (const k of keys) {
        expect(where.get(k), k).toEqual([ring.owner(k)]);
        perNode.set(ring.owner(k), (perNode.get(ring.owner(k)) ?? 0) + 1);
      }
      for (const n of cluster.nodes) {
        expect(perNode.get(n.address) ?? 0).toBeGreaterThan(30);
        expect(await n.command('DBSIZE')).toBe(perNode.get(n.address));
      }
      // The proxy says the same through its owner endpoint.
      for (const k of keys.slice(0, 20)) {
        const o = await p.req('GET', `/api/v1/ring/owner/${encodeURIComponent(k)}`);
        expect(o.body.node).toBe(ring.owner(k));
      }
    });
  });

  it('batch writes land where single writes do', async () => {
    await withProxy({}, async (p) => {
      const keys = Array.from({ length: 200 }, (_, i) => `bplace-${i}`);
      const res = await p.req('POST', '/api/v1/cache/batch', {
        json: { items: Object.fromEntries(keys.map((k) => [k, { value: 1 }])) },
      });
      expect(res.body).toEqual({ stored: 200, failed: {} });
      const ring = new Ring(cluster.addresses.map((id) => ({ id })));
      const where = await holders(keys);
      for (const k of keys) expect(where.get(k), k).toEqual([ring.owner(k)]);
    });
  });

  it('follows the configured hash and hash tag', async () => {
    await withProxy({ DC_CACHE_HASH: 'fnv1a_64', DC_CACHE_HASH_TAG: '{}' }, async (p) => {
      const keys = [
        ...Array.from({ length: 100 }, (_, i) => `fnv-${i}`),
        ...Array.from({ length: 20 }, (_, i) => `{tenant-7}:item-${i}`),
      ];
      const res = await p.req('POST', '/api/v1/cache/batch', {
        json: { items: Object.fromEntries(keys.map((k) => [k, { value: 1 }])) },
      });
      expect(res.status).toBe(200);
      const ring = new Ring(
        cluster.addresses.map((id) => ({ id })),
        { hash: 'fnv1a_64', hashTag: '{}' },
      );
      const where = await holders(keys);
      for (const k of keys) expect(where.get(k), k).toEqual([ring.owner(k)]);
      const tenant = new Set(keys.filter((k) => k.startsWith('{')).map((k) => where.get(k)?.[0]));
      expect(tenant.size).toBe(1);
    });
  });
});
