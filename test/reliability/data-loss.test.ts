import { Ring } from '@dcache/ring';
import { cleanupAll, type RedisCluster, startRedisCluster, waitFor } from '@dcache/test-utils';
import { afterEach, describe, expect, it } from 'vitest';
import {
  call,
  FAST_HEALTH,
  nodeServing,
  type ProxyProcess,
  report,
  startProxy,
} from './harness.js';
import { LoadClient, type Outcome, runLoad } from './http-load.js';

const N_KEYS = 300;

/** Kill `victim`, wait until the proxy ejects it, restart it empty, wait until it is back. */
async function restartEmpty(redis: RedisCluster, index: number, proxy: ProxyProcess) {
  const victim = redis.nodes[index]!;
  const t0 = performance.now();
  await victim.kill();
  await waitFor(async () => !(await nodeServing(proxy.url, victim.address)), {
    timeout: 15_000,
    interval: 20,
    message: 'ejection of the killed node',
  });
  const ejectedAt = performance.now();
  return {
    victim,
    t0,
    ejectedAt,
    async back() {
      await victim.restart();
      expect(await victim.command('DBSIZE')).toBe(0);
      await waitFor(() => nodeServing(proxy.url, victim.address), {
        timeout: 15_000,
        interval: 20,
        message: 're-add of the restarted node',
      });
      return performance.now();
    },
  };
}

describe('a Redis node restarted empty', () => {
  let proxy: ProxyProcess | undefined;

  afterEach(async () => {
    await proxy?.proc.stop();
    proxy = undefined;
    await cleanupAll();
  });

  it('R=1: the proxy keeps serving and misses exactly that node’s keys', async () => {
    const redis = await startRedisCluster(3);
    proxy = await startProxy({ DC_CACHE_ADDRESSES: redis.addressList, ...FAST_HEALTH });
    const ring = new Ring(redis.addresses.map((id) => ({ id })));
    const keys = Array.from({ length: N_KEYS }, (_, i) => `dl1:${i}`);
    const set = await call(proxy.url, 'POST', '/api/v1/cache/batch', {
      json: { items: Object.fromEntries(keys.map((k) => [k, { value: k, ttl: '1h' }])) },
    });
    expect(set.body.stored).toBe(N_KEYS);
    const victimId = redis.addresses[1]!;
    const owned = new Set(keys.filter((k) => ring.owner(k) === victimId));
    expect(owned.size).toBeGreaterThan(30);

    // Readers all along: a node's death may fail its own keys until ejection, never the others.
    const client = new LoadClient('127.0.0.1', proxy.port, 8);
    const samples: (Outcome & { key: string })[] = [];
    let stop = false;
    const load = runLoad(
      { workers: 6, maxMs: 60_000, maxRequests: 500_000, stop: () => stop },
      async (i) => {
        const key = keys[(i * 7) % N_KEYS]!;
        samples.push({ ...(await client.send('GET', `/api/v1/cache/${key}`)), key });
      },
    );
    await waitFor(() => samples.length > 300, { timeout: 20_000, message: 'warm load' });

    const r = await restartEmpty(redis, 1, proxy);
    // Written while the node is out: these go to the fallback owner.
    const during = Array.from({ length: 2_000 }, (_, i) => `dl1:w:${i}`)
      .filter((k) => ring.owner(k) === victimId)
      .slice(0, 30);
    for (const k of during) {
      expect(
        (await call(proxy.url, 'PUT', `/api/v1/cache/${k}`, { json: { value: k } })).status,
      ).toBe(200);
    }
    const backAt = await r.back();
    await waitFor(() => samples.filter((s) => s.sentAt > backAt).length > 300, {
      timeout: 20_000,
      message: 'load after re-add',
    });
    stop = true;
    await load;
    client.close();

    const othersFailed = samples.filter((s) => !owned.has(s.key) && s.status !== 200);
    const victimErrors = samples.filter(
      (s) => owned.has(s.key) && (s.status === 0 || s.status >= 500),
    );
    const late = victimErrors.filter((s) => s.sentAt > r.ejectedAt);
    // While the node rejoins (its keys handed back), its keys fail fast with 503: allowed (it is
    // a cache), and never a timeout or a dropped request.
    const lateErrors = late.filter((s) => s.status !== 503);
    const afterBack = samples.filter((s) => s.sentAt > backAt + 50 && owned.has(s.key));

    // Every original key read once more: exactly the victim's keys are misses.
    const got = await call(proxy.url, 'POST', '/api/v1/cache/batch/get', { json: { keys } });
    const missing = new Set<string>(got.body.missing);
    const unexpectedMiss = keys.filter((k) => missing.has(k) !== owned.has(k));
    // Keys written during the ejection are found (warm-up reads the previous owner).
    const duringGot = await call(proxy.url, 'POST', '/api/v1/cache/batch/get', {
      json: { keys: during },
    });

    report('data-loss-r1', {
      keys: N_KEYS,
      victim_keys: owned.size,
      misses_after_restart: missing.size,
      misses_outside_victim: unexpectedMiss.length,
      written_during_ejection: during.length,
      found_after_readd: Object.keys(duringGot.body.items).length,
      reads: samples.length,
      failed_other_nodes: othersFailed.length,
      failed_victim_before_ejection: victimErrors.length - late.length,
      failed_victim_after_ejection: lateErrors.length,
      fenced_503_while_rejoining: late.length - lateErrors.length,
      eject_ms: Math.round(r.ejectedAt - r.t0),
      victim_reads_after_readd: afterBack.length,
      victim_hits_after_readd: afterBack.filter((s) => s.status === 200).length,
    });
    expect(got.status).toBe(200);
    expect(unexpectedMiss).toEqual([]);
    expect(othersFailed).toEqual([]);
    expect(lateErrors).toEqual([]);
    expect(Object.keys(duringGot.body.items)).toHaveLength(during.length);
    // After re-add the victim's old keys are misses (404), never errors.
    expect(afterBack.filter((s) => s.status !== 404)).toEqual([]);
  });

  it('R=2: no miss at all, and read repair refills the restarted node', async () => {
    const redis = await startRedisCluster(3);
    proxy = await startProxy({
      DC_CACHE_ADDRESSES: redis.addressList,
      DC_REPLICATION_FACTOR: '2',
      ...FAST_HEALTH,
    });
    const ring = new Ring(redis.addresses.map((id) => ({ id })));
    const keys = Array.from({ length: N_KEYS }, (_, i) => `dl2:${i}`);
    for (const k of keys.slice(0, 100)) {
      expect(
        (await call(proxy.url, 'PUT', `/api/v1/cache/${k}`, { json: { value: k, ttl: '1h' } }))
          .status,
      ).toBe(200);
    }
    const set = await call(proxy.url, 'POST', '/api/v1/cache/batch', {
      json: { items: Object.fromEntries(keys.slice(100).map((k) => [k, { value: k, ttl: '1h' }])) },
    });
    expect(set.body.stored).toBe(N_KEYS - 100);
    const victimId = redis.addresses[2]!;
    const primary = keys.filter((k) => ring.owners(k, 2)[0] === victimId);
    const replica = keys.filter((k) => ring.owners(k, 2)[1] === victimId);
    expect(primary.length).toBeGreaterThan(30);

    const r = await restartEmpty(redis, 2, proxy);
    await r.back();

    // Single reads of half the keys, a batch read of the rest: every one found, with its value.
    let misses = 0;
    let wrong = 0;
    for (const k of keys.slice(0, 150)) {
      const g = await call(proxy.url, 'GET', `/api/v1/cache/${k}`);
      if (g.status === 404) misses++;
      else if (g.status !== 200 || g.body.value !== k) wrong++;
    }
    const batch = await call(proxy.url, 'POST', '/api/v1/cache/batch/get', {
      json: { keys: keys.slice(150) },
    });
    misses += batch.body.missing.length;
    for (const [k, v] of Object.entries(batch.body.items)) if (v !== k) wrong++;
    // Read repair: the restarted node holds its primary keys again once they were read.
    await waitFor(
      async () => {
        let held = 0;
        for (const k of primary) if ((await r.victim.command('EXISTS', k)) === 1) held++;
        return held === primary.length;
      },
      { timeout: 10_000, interval: 200, message: 'read repair of the primary keys' },
    );
    const dbsize = await r.victim.command('DBSIZE');
    report('data-loss-r2', {
      keys: N_KEYS,
      victim_primary_keys: primary.length,
      victim_replica_keys: replica.length,
      misses,
      wrong_values: wrong,
      victim_dbsize_after_reads: dbsize,
      batch_failed: Object.keys(batch.body.failed).length,
    });
    expect(misses).toBe(0);
    expect(wrong).toBe(0);
    expect(batch.status).toBe(200);
  });
});
