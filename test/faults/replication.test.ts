import { Ring } from '@dcache/ring';
import { cleanupAll, type RedisCluster, startRedisCluster, waitFor } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessProxy, startInProcessProxy } from '../helpers/in-process-proxy.js';
import { FAST_HEALTH } from './fault-env.js';

const json = { 'content-type': 'application/json' };

describe('replication factor 2', () => {
  let redis: RedisCluster;
  let proxy: InProcessProxy;
  const keys = Array.from({ length: 300 }, (_, i) => `rep:${i}`);

  beforeAll(async () => {
    redis = await startRedisCluster(3);
    proxy = await startInProcessProxy({
      DC_CACHE_ADDRESSES: redis.addressList,
      DC_REPLICATION_FACTOR: '2',
      ...FAST_HEALTH,
    });
  });
  afterAll(async () => {
    await proxy?.close();
    await cleanupAll();
  });

  it('writes land on the first two owners', async () => {
    for (const k of keys.slice(0, 150)) {
      const r = await fetch(`${proxy.url}/api/v1/cache/${k}`, {
        method: 'PUT',
        headers: json,
        body: JSON.stringify({ value: k, ttl: '1h' }),
      });
      expect(r.status).toBe(200);
    }
    const r = await fetch(`${proxy.url}/api/v1/cache/batch`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({
        items: Object.fromEntries(keys.slice(150).map((k) => [k, { value: k }])),
      }),
    });
    expect(await r.json()).toEqual({ stored: 150, failed: {} });
    const ring = new Ring(redis.addresses.map((id) => ({ id })));
    const byAddr = new Map(redis.nodes.map((n) => [n.address, n]));
    for (const k of keys) {
      const owners = ring.owners(k, 2);
      for (const o of owners) expect(await byAddr.get(o)!.command('EXISTS', k)).toBe(1);
      const third = redis.addresses.find((a) => !owners.includes(a))!;
      expect(await byAddr.get(third)!.command('EXISTS', k)).toBe(0);
    }
  });

  it('SIGKILL a node: 0 failed reads of keys written before, single and batch, and read repair after restart', async () => {
    const victim = redis.nodes[0]!;
    await victim.kill();
    let failed = 0;
    let wrong = 0;
    for (const k of keys) {
      const r = await fetch(`${proxy.url}/api/v1/cache/${k}`);
      if (r.status !== 200) failed++;
      else if (((await r.json()) as { value: string }).value !== k) wrong++;
    }
    const b = await fetch(`${proxy.url}/api/v1/cache/batch/get`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ keys }),
    });
    const body = (await b.json()) as {
      items: Record<string, string>;
      missing: string[];
      failed: Record<string, string>;
    };
    console.log(
      `[replication] reads after kill: failed=${failed} wrong=${wrong}; batch missing=${body.missing.length} failed=${Object.keys(body.failed).length}`,
    );
    expect(failed).toBe(0);
    expect(wrong).toBe(0);
    expect(b.status).toBe(200);
    expect(Object.keys(body.items)).toHaveLength(keys.length);
    expect(body.missing).toEqual([]);

    // The node comes back empty; reads find the copy on the replica and copy it back (read repair).
    await victim.restart();
    await waitFor(() => !proxy.rt.health.ejected.has(victim.address), {
      timeout: 15_000,
      message: 're-add',
    });
    const ring = new Ring(redis.addresses.map((id) => ({ id })));
    const primaryOnVictim = keys.filter((k) => ring.owner(k) === victim.address);
    expect(primaryOnVictim.length).toBeGreaterThan(10);
    for (const k of primaryOnVictim) {
      const r = await fetch(`${proxy.url}/api/v1/cache/${k}`);
      expect(r.status).toBe(200);
    }
    await waitFor(
      async () => {
        const present = await Promise.all(primaryOnVictim.map((k) => victim.command('EXISTS', k)));
        return present.every((x) => x === 1);
      },
      { timeout: 10_000, message: 'read repair onto the restarted primary' },
    );
    // Repaired copies keep the remaining TTL of the source (the first 150 keys had 1h).
    const withTtl = primaryOnVictim.filter((k) => Number(k.split(':')[1]) < 150);
    for (const k of withTtl) {
      const pttl = (await victim.command('PTTL', k)) as number;
      expect(pttl).toBeGreaterThan(3_000_000);
      expect(pttl).toBeLessThanOrEqual(3_600_000);
    }
  });
});
