import { Ring } from '@dcache/ring';
import {
  cleanupAll,
  type RedisCluster,
  type RedisServer,
  startRedisCluster,
  waitFor,
} from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessProxy, startInProcessProxy } from '../helpers/in-process-proxy.js';
import { FAST_HEALTH } from './fault-env.js';

const json = { 'content-type': 'application/json' };

async function put(url: string, key: string, value: unknown): Promise<number> {
  const r = await fetch(`${url}/api/v1/cache/${encodeURIComponent(key)}`, {
    method: 'PUT',
    headers: json,
    body: JSON.stringify({ value }),
  });
  await r.arrayBuffer();
  return r.status;
}

async function get(url: string, key: string): Promise<{ status: number; value?: unknown }> {
  const r = await fetch(`${url}/api/v1/cache/${encodeURIComponent(key)}`);
  const body = (await r.json()) as { value?: unknown };
  return { status: r.status, value: body.value };
}

describe('no stale read after re-add', () => {
  let redis: RedisCluster;

  beforeAll(async () => {
    redis = await startRedisCluster(3);
  });
  afterAll(async () => {
    for (const n of redis?.nodes ?? []) n.cont();
    await cleanupAll();
  });

  const keysOwnedBy = (node: RedisServer, n: number, prefix: string) => {
    const ring = new Ring(redis.addresses.map((id) => ({ id })));
    const out: string[] = [];
    for (let i = 0; out.length < n; i++)
      if (ring.owner(`${prefix}${i}`) === node.address) out.push(`${prefix}${i}`);
    return out;
  };

  async function scenario(proxy: InProcessProxy, x: RedisServer, prefix: string, written: number) {
    const owned = keysOwnedBy(x, written + 1, prefix);
    const k = owned[0]!;
    const j = owned[1]!;
    expect(await put(proxy.url, k, 'v1')).toBe(200);
    expect(await put(proxy.url, j, 'j1')).toBe(200);
    for (const extra of owned.slice(2)) expect(await put(proxy.url, extra, 'old')).toBe(200);
    // Eject X while it keeps its memory (SIGSTOP), change k and delete j meanwhile.
    x.stop();
    await waitFor(() => proxy.rt.health.ejected.has(x.address), {
      timeout: 10_000,
      message: 'ejection',
    });
    expect(await put(proxy.url, k, 'v2')).toBe(200);
    const del = await fetch(`${proxy.url}/api/v1/cache/${j}`, { method: 'DELETE' });
    expect([200, 404]).toContain(del.status);
    for (const extra of owned.slice(2)) expect(await put(proxy.url, extra, 'new')).toBe(200);
    x.cont();
    await waitFor(() => !proxy.rt.health.ejected.has(x.address), {
      timeout: 15_000,
      message: 're-add',
    });
    // X owns k and j again and still held v1/j1 in memory: they must not be served.
    expect(new Ring(redis.addresses.map((id) => ({ id }))).owner(k)).toBe(x.address);
    expect(await get(proxy.url, k)).toEqual({ status: 200, value: 'v2' });
    expect((await get(proxy.url, j)).status).toBe(404);
    for (const extra of owned.slice(2)) expect((await get(proxy.url, extra)).value).toBe('new');
    return owned;
  }

  it('journal: keys written or deleted during ejection are purged on X before it serves', async () => {
    const proxy = await startInProcessProxy({
      DC_CACHE_ADDRESSES: redis.addressList,
      ...FAST_HEALTH,
    });
    try {
      const x = redis.nodes[0]!;
      const owned = await scenario(proxy, x, 'stale:', 10);
      const purged = await proxy.rt.metrics.stalePurges.get();
      const n = purged.values.find((v) => v.labels.node === x.address)?.value ?? 0;
      console.log(`[stale] keys purged on re-add: ${n}`);
      // k, j and every extra key changed during the ejection.
      expect(n).toBe(owned.length);
      // The purge is logged once.
      expect(
        proxy.logs.filter(
          (l) => l.msg === 'rejoin: purged the keys changed while the node was out',
        ),
      ).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  });

  it('journal overflow: the node is flushed before it rejoins', async () => {
    const proxy = await startInProcessProxy({
      DC_CACHE_ADDRESSES: redis.addressList,
      ...FAST_HEALTH,
      DC_HEALTH_JOURNAL_SIZE: '5',
    });
    try {
      const x = redis.nodes[1]!;
      await x.command('SET', 'untouched-on-x', '"kept?"');
      await scenario(proxy, x, 'overflow:', 20);
      expect(await x.command('EXISTS', 'untouched-on-x')).toBe(0);
      const flushes = await proxy.rt.metrics.staleFlushes.get();
      expect(flushes.values.find((v) => v.labels.node === x.address)?.value).toBe(1);
    } finally {
      await proxy.close();
    }
  });
});
