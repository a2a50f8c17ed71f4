import { cleanupAll, type RedisCluster, startRedisCluster } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, startProxy, type TestProxy } from '../helpers.js';

let cluster: RedisCluster;
let open: TestProxy;
let guarded: TestProxy;
const TOKEN = 's3cret-admin-token';

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  open = await startProxy(cluster.addresses);
  guarded = await startProxy(cluster.addresses, { DC_ADMIN_TOKEN: TOKEN });
});

afterAll(async () => {
  await open?.close();
  await guarded?.close();
  await cleanupAll();
});

const FIGURES = ['keys', 'used_memory', 'hits', 'misses', 'ops'] as const;

describe('GET /api/v1/cache/stats', () => {
  it('reports per-node and total figures that match the nodes', async () => {
    const items = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`s${i}`, { value: i }]));
    expect((await open.req('POST', '/api/v1/cache/batch', { json: { items } })).status).toBe(200);
    await open.req('GET', '/api/v1/cache/s1');
    await open.req('GET', '/api/v1/cache/no-such-key');

    const res = await open.req('GET', '/api/v1/cache/stats');
    expect(res.status).toBe(200);
    const { nodes, total, proxy } = res.body;
    expect(nodes).toHaveLength(3);
    expect(nodes.map((n: { id: string }) => n.id).sort()).toEqual([...cluster.addresses].sort());
    for (const n of nodes) {
      for (const f of FIGURES) expect(typeof n[f], `${n.id} ${f}`).toBe('number');
      expect(n.state).toBe('closed');
      expect(n.healthy).toBe(true);
      const fixture = cluster.nodes.find((x) => x.address === n.id);
      expect(n.keys).toBe(await fixture?.command('DBSIZE'));
      expect(n.used_memory).toBeGreaterThan(0);
      expect(n.ops).toBeGreaterThan(0);
    }
    for (const f of FIGURES) {
      expect(total[f]).toBe(
        nodes.reduce((a: number, n: Record<string, number>) => a + (n[f] ?? 0), 0),
      );
    }
    expect(total.keys).toBe(60);
    expect(total.nodes).toBe(3);
    expect(total.healthy_nodes).toBe(3);
    expect(total.hits).toBeGreaterThanOrEqual(1);
    expect(total.misses).toBeGreaterThanOrEqual(1);
    expect(proxy.hits).toBe(1);
    expect(proxy.misses).toBe(1);
    expect(proxy.requests).toBeGreaterThanOrEqual(3);
    expect(typeof proxy.ring_version).toBe('number');
  });
});

describe('DELETE /api/v1/cache/ (flush)', () => {
  it('needs the admin token when one is configured: 401 missing, 403 wrong, 200 right', async () => {
    await guarded.req('PUT', '/api/v1/cache/f1', { json: { value: 1 } });
    expectError(await guarded.req('DELETE', '/api/v1/cache/'), 401, 'UNAUTHORIZED');
    expectError(
      await guarded.req('DELETE', '/api/v1/cache/', { headers: { authorization: 'Bearer nope' } }),
      403,
      'FORBIDDEN',
    );
    expectError(
      await guarded.req('DELETE', '/api/v1/cache/', {
        headers: { authorization: `Basic ${TOKEN}` },
      }),
      401,
      'UNAUTHORIZED',
    );
    expect((await guarded.req('GET', '/api/v1/cache/f1')).status).toBe(200);
    const ok = await guarded.req('DELETE', '/api/v1/cache/', {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(ok.status).toBe(200);
    expect(ok.body.flushed_nodes).toBe(3);
    expect((await guarded.req('GET', '/api/v1/cache/f1')).status).toBe(404);
    for (const n of cluster.nodes) expect(await n.command('DBSIZE')).toBe(0);
  });

  it('is open when no admin token is configured', async () => {
    await open.req('PUT', '/api/v1/cache/f2', { json: { value: 2 } });
    const res = await open.req('DELETE', '/api/v1/cache/');
    expect(res.status).toBe(200);
    expect(res.body.flushed_nodes).toBe(3);
    for (const n of cluster.nodes) expect(await n.command('DBSIZE')).toBe(0);
  });
});
