import { Ring } from '@dcache/ring';
import { cleanupAll, type RedisCluster, startRedisCluster, waitFor } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, startProxy, type TestProxy } from '../helpers.js';

let cluster: RedisCluster;
let proxy: TestProxy;
let ring: Ring;

const KEYS = Array.from({ length: 90 }, (_, i) => `shard-key-${i}`);

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  // Nobody is ejected during these checks: the failures must show per key, not be routed around.
  proxy = await startProxy(cluster.addresses, {
    DC_HEALTH_FAILURE_THRESHOLD: '1000',
    DC_HEALTH_INTERVAL: '60s',
    DC_HEALTH_RETRY_INTERVAL: '60s',
    DC_CACHE_COMMAND_TIMEOUT: '2s',
  });
  ring = new Ring(
    cluster.addresses.map((id) => ({ id })),
    { hash: 'murmur' },
  );
});

afterAll(async () => {
  await proxy?.close();
  await cleanupAll();
});

/** A pipelined batch write to a dead node reports NODE_UNAVAILABLE, like the MGET of batch get. */
const PIPELINE_CODES = ['NODE_UNAVAILABLE'];

/** `failed` names exactly `keys`, all with one code out of `codes`. */
function expectFailed(failed: Record<string, string>, keys: readonly string[], codes: string[]) {
  expect(Object.keys(failed).sort()).toEqual([...keys].sort());
  const seen = new Set(Object.values(failed));
  expect(seen.size).toBe(1);
  expect(codes).toContain([...seen][0]);
}

/** Wait until the proxy's clients of `address` have seen the connection drop. */
async function waitDisconnected(address: string): Promise<void> {
  await waitFor(
    async () => {
      const h = await proxy.req('GET', '/health');
      return h.body.nodes.find((n: { id: string }) => n.id === address)?.connected === false;
    },
    { timeout: 15_000, interval: 50, message: `the proxy to see ${address} disconnected` },
  );
}

describe('batch calls with one node SIGKILLed', () => {
  it('fails exactly the dead node keys with NODE_UNAVAILABLE (207) and serves the rest', async () => {
    const stored = await proxy.req('POST', '/api/v1/cache/batch', {
      json: { items: Object.fromEntries(KEYS.map((k) => [k, { value: `v:${k}` }])) },
    });
    expect(stored.body).toEqual({ stored: KEYS.length, failed: {} });

    const dead = cluster.nodes[1];
    if (!dead) throw new Error('fixture has 3 nodes');
    const deadKeys = KEYS.filter((k) => ring.owner(k) === dead.address);
    const liveKeys = KEYS.filter((k) => ring.owner(k) !== dead.address);
    expect(deadKeys.length).toBeGreaterThan(5);
    expect(liveKeys.length).toBeGreaterThan(10);
    await dead.kill();
    await waitDisconnected(dead.address);

    const absent = ['absent-1', 'absent-2', 'absent-3', 'absent-4', 'absent-5', 'absent-6'];
    const absentDead = absent.filter((k) => ring.owner(k) === dead.address);
    const got = await proxy.req('POST', '/api/v1/cache/batch/get', {
      json: { keys: [...KEYS, ...absent] },
    });
    expect(got.status).toBe(207);
    expectFailed(got.body.failed, [...deadKeys, ...absentDead], ['NODE_UNAVAILABLE']);
    expect(got.body.items).toEqual(Object.fromEntries(liveKeys.map((k) => [k, `v:${k}`])));
    expect(got.body.missing).toEqual(absent.filter((k) => !absentDead.includes(k)));

    const set = await proxy.req('POST', '/api/v1/cache/batch', {
      json: { items: Object.fromEntries(KEYS.map((k) => [k, { value: `w:${k}`, ttl: '1h' }])) },
    });
    expect(set.status).toBe(207);
    expect(set.body.stored).toBe(liveKeys.length);
    expectFailed(set.body.failed, deadKeys, PIPELINE_CODES);
    for (const k of liveKeys.slice(0, 5))
      expect((await proxy.req('GET', `/api/v1/cache/${k}`)).body.value).toBe(`w:${k}`);

    // Single-key calls on the dead node's keys: a clean 503, never a hang or a 500.
    expectError(await proxy.req('GET', `/api/v1/cache/${deadKeys[0]}`), 503, 'NODE_UNAVAILABLE');
    expectError(
      await proxy.req('PUT', `/api/v1/cache/${deadKeys[0]}`, { json: { value: 1 } }),
      503,
      'NODE_UNAVAILABLE',
    );

    // Listing skips the dead node and says so; its keys are simply not in the walk.
    const listed = await proxy.req('GET', '/api/v1/cache/keys?pattern=shard-key-*&limit=10000');
    expect(listed.status).toBe(200);
    expect(listed.body.skipped_nodes).toEqual([dead.address]);
    expect([...listed.body.keys].sort()).toEqual([...liveKeys].sort());
    expect(listed.body.cursor).toBeNull();

    const stats = await proxy.req('GET', '/api/v1/cache/stats');
    expect(stats.status).toBe(200);
    const deadStats = stats.body.nodes.find((n: { id: string }) => n.id === dead.address);
    expect(deadStats.error.code).toBe('NODE_UNAVAILABLE');
    expect(stats.body.total.keys).toBe(liveKeys.length);

    const del = await proxy.req('DELETE', '/api/v1/cache/batch', { json: { keys: KEYS } });
    expect(del.status).toBe(207);
    expect(del.body.deleted).toBe(liveKeys.length);
    expectFailed(del.body.failed, deadKeys, PIPELINE_CODES);
    for (const k of liveKeys.slice(0, 5))
      expect((await proxy.req('HEAD', `/api/v1/cache/${k}`)).status).toBe(404);

    // Flush reaches the live nodes and reports the dead one: 207.
    const flush = await proxy.req('DELETE', '/api/v1/cache/');
    expect(flush.status).toBe(207);
    expect(flush.body).toEqual({
      flushed_nodes: 2,
      failed: { [dead.address]: 'NODE_UNAVAILABLE' },
    });
  });

  it('answers 503 ALL_FAILED with every key in failed when every node is dead', async () => {
    for (const n of cluster.nodes) await n.kill();
    for (const n of cluster.nodes) await waitDisconnected(n.address);
    const got = await proxy.req('POST', '/api/v1/cache/batch/get', { json: { keys: KEYS } });
    expectError(got, 503, 'ALL_FAILED');
    expectFailed(got.body.failed, KEYS, ['NODE_UNAVAILABLE']);

    const set = await proxy.req('POST', '/api/v1/cache/batch', {
      json: { items: Object.fromEntries(KEYS.map((k) => [k, { value: 1 }])) },
    });
    expectError(set, 503, 'ALL_FAILED');
    expectFailed(set.body.failed, KEYS, PIPELINE_CODES);

    const del = await proxy.req('DELETE', '/api/v1/cache/batch', { json: { keys: KEYS } });
    expectError(del, 503, 'ALL_FAILED');
    expectFailed(del.body.failed, KEYS, PIPELINE_CODES);

    const flush = await proxy.req('DELETE', '/api/v1/cache/');
    expectError(flush, 503, 'ALL_FAILED');
    expect(await proxy.req('GET', '/health/live').then((r) => r.status)).toBe(200);
  });

  it('serves again once the nodes are back', async () => {
    for (const n of cluster.nodes) await n.restart();
    await waitFor(
      async () =>
        (
          await proxy.req('POST', '/api/v1/cache/batch', {
            json: { items: Object.fromEntries(KEYS.map((k) => [k, { value: 2 }])) },
          })
        ).status === 200,
      { timeout: 20_000, interval: 100, message: 'batch set to succeed on every node again' },
    );
    const got = await proxy.req('POST', '/api/v1/cache/batch/get', { json: { keys: KEYS } });
    expect(got.status).toBe(200);
    expect(Object.keys(got.body.items)).toHaveLength(KEYS.length);
  });
});
