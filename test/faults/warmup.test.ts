import { Ring, upsertEntry } from '@dcache/ring';
import {
  cleanupAll,
  type RedisCluster,
  startRedis,
  startRedisCluster,
  waitFor,
} from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessProxy, startInProcessProxy } from '../helpers/in-process-proxy.js';
import { FAST_HEALTH } from './fault-env.js';

const json = { 'content-type': 'application/json' };

describe('warm-up after a ring change', () => {
  let redis: RedisCluster;
  let proxy: InProcessProxy;
  const keys = Array.from({ length: 400 }, (_, i) => `warm:${i}`);
  let fourthAddress = '';

  beforeAll(async () => {
    redis = await startRedisCluster(3);
    proxy = await startInProcessProxy({
      DC_CACHE_ADDRESSES: redis.addressList,
      DC_REPLICATION_WARMUP_WINDOW: '60s',
      ...FAST_HEALTH,
    });
    const r = await fetch(`${proxy.url}/api/v1/cache/batch`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({
        items: Object.fromEntries(keys.map((k) => [k, { value: { k }, ttl: '1h' }])),
      }),
    });
    expect(r.status).toBe(200);
  });
  afterAll(async () => {
    await proxy?.close();
    await cleanupAll();
  });

  it('keys that move to a new 4th node are served from the old owner, then live on the new node', async () => {
    const fourth = await startRedis();
    fourthAddress = fourth.address;
    const before = new Ring(redis.addresses.map((id) => ({ id })));
    const after = new Ring([...redis.addresses, fourth.address].map((id) => ({ id })));
    const moved = keys.filter((k) => after.owner(k) === fourth.address);
    const stayed = keys.filter((k) => after.owner(k) !== fourth.address);
    expect(moved.length).toBeGreaterThan(40);
    // Only keys that moved to the new node changed owner (ketama: ~1/(N+1)).
    expect(stayed.every((k) => after.owner(k) === before.owner(k))).toBe(true);

    const doc = upsertEntry(
      proxy.rt.holder.current.doc,
      { id: fourth.address, address: fourth.address, weight: 1, state: 'active' },
      'test',
      Date.now(),
    );
    expect(proxy.rt.holder.apply(doc, 'admin')).toBe(true);
    await waitFor(() => proxy.rt.pool.get(fourth.address)?.connected === true, {
      timeout: 5_000,
      message: 'pool connects the new node',
    });

    // Half the moved keys by single GET, half by batch GET: no miss either way.
    const half = Math.floor(moved.length / 2);
    let misses = 0;
    for (const k of moved.slice(0, half)) {
      const r = await fetch(`${proxy.url}/api/v1/cache/${k}`);
      if (r.status !== 200) misses++;
      else expect(await r.json()).toEqual({ key: k, value: { k } });
    }
    const b = await fetch(`${proxy.url}/api/v1/cache/batch/get`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ keys: moved.slice(half) }),
    });
    const body = (await b.json()) as { items: Record<string, unknown>; missing: string[] };
    misses += body.missing.length;
    console.log(`[warmup] moved=${moved.length} first-read misses=${misses}`);
    expect(misses).toBe(0);
    expect(Object.keys(body.items)).toHaveLength(moved.length - half);

    // The copies land on the new node with the remaining TTL.
    await waitFor(
      async () => {
        const present = await Promise.all(moved.map((k) => fourth.command('EXISTS', k)));
        return present.every((x) => x === 1);
      },
      { timeout: 10_000, message: 'warm-up copies on the new node' },
    );
    const pttl = (await fourth.command('PTTL', moved[0]!)) as number;
    expect(pttl).toBeGreaterThan(3_000_000);
    const warm = await proxy.rt.metrics.warmupReads.get();
    expect(warm.values.find((v) => v.labels.result === 'hit')?.value).toBe(moved.length);
  });

  it('a delete during the window also removes the old copy (no resurrection)', async () => {
    const before = new Ring(redis.addresses.map((id) => ({ id })));
    const ring = proxy.rt.holder.current.ring;
    // A moved key the new owner has not copied yet: write it on the old owner only.
    const k = Array.from({ length: 2_000 }, (_, i) => `late:${i}`).find(
      (x) => ring.owner(x) === fourthAddress,
    )!;
    const oldOwner = redis.nodes.find((n) => n.address === before.owner(k))!;
    await oldOwner.command('SET', k, '"old"');
    const del = await fetch(`${proxy.url}/api/v1/cache/${k}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(await oldOwner.command('EXISTS', k)).toBe(0);
    expect((await fetch(`${proxy.url}/api/v1/cache/${k}`)).status).toBe(404);
  });
});
