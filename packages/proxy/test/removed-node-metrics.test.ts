import {
  CI_SAFE_ENV,
  cleanupAll,
  type RedisServer,
  type SpawnedProxy,
  spawnProxy,
  startRedis,
  waitFor,
} from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Review D3: the per-node series of a node that left the membership stayed in /metrics for ever
// (metrics.removeNode was never called), so cardinality grew with node churn.

const ADMIN = 'adm-removed-node-metrics';
let nodes: RedisServer[];
let spare: RedisServer;
let proxy: SpawnedProxy;

beforeAll(async () => {
  [nodes, spare] = await Promise.all([Promise.all([startRedis(), startRedis()]), startRedis()]);
  proxy = await spawnProxy({
    ...CI_SAFE_ENV,
    DC_ADMIN_TOKEN: ADMIN,
    DC_CACHE_ADDRESSES: nodes.map((n) => n.address).join(','),
  });
});

afterAll(async () => {
  await proxy?.proc.stop();
  await cleanupAll();
});

const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
const metrics = async () => (await fetch(`${proxy.url}/metrics`)).text();
const seriesOf = (text: string, id: string) =>
  text.split('\n').filter((l) => !l.startsWith('#') && l.includes(`node="${id}"`));

describe('/metrics after a node leaves', () => {
  it('has no series with node="<id>" once the node is removed through the admin API', async () => {
    const id = 'spare-node';
    const add = await fetch(`${proxy.url}/api/v1/ring/nodes`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ address: spare.address, id }),
    });
    expect(add.status).toBe(201);
    // Traffic to every node, the new one included, creates its per-node series.
    await waitFor(
      async () => {
        for (let i = 0; i < 30; i++) {
          const put = await fetch(`${proxy.url}/api/v1/cache/d3:${i}`, {
            method: 'PUT',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ value: i }),
          });
          await put.arrayBuffer();
        }
        return (await spare.command('DBSIZE')) !== 0;
      },
      { timeout: 30_000, message: 'some keys to land on the added node' },
    );
    const before = seriesOf(await metrics(), id);
    const names = new Set(before.map((l) => l.slice(0, l.indexOf('{'))));
    expect(names).toContain('dcache_node_up');
    expect([...names].some((n) => n.startsWith('dcache_redis_command_duration_seconds'))).toBe(
      true,
    );
    expect(names.size).toBeGreaterThanOrEqual(4);

    const del = await fetch(`${proxy.url}/api/v1/ring/nodes/${id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(del.status).toBe(200);
    const after = await metrics();
    expect(seriesOf(after, id)).toEqual([]);
    // The nodes that stay keep theirs.
    for (const n of nodes) expect(seriesOf(after, n.address).length).toBeGreaterThan(0);
  });
});
