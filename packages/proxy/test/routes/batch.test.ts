import { cleanupAll, type RedisCluster, startRedisCluster } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, startProxy, type TestProxy } from '../helpers.js';

let cluster: RedisCluster;
let proxy: TestProxy;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  proxy = await startProxy(cluster.addresses, {
    DC_LIMITS_MAX_VALUE_BYTES: '4kb',
    DC_LIMITS_MAX_BODY_BYTES: '256kb',
  });
});

afterAll(async () => {
  await proxy?.close();
  await cleanupAll();
});

const items = (n: number, prefix: string, extra: Record<string, unknown> = {}) =>
  Object.fromEntries(
    Array.from({ length: n }, (_, i) => [`${prefix}${i}`, { value: { i }, ...extra }]),
  );

describe('POST /api/v1/cache/batch', () => {
  it('stores items with mixed TTLs across every node: 200 {stored, failed}', async () => {
    const res = await proxy.req('POST', '/api/v1/cache/batch', {
      json: {
        items: {
          b1: { value: 'v1', ttl: '30m' },
          b2: { value: { deep: [1, 2] }, ttl: '1h' },
          b3: { value: null },
          b4: { value: 7, ttl: 90 },
        },
      },
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ stored: 4, failed: {} });
    const ttl = async (k: string) => (await ownerNode(k).command('PTTL', k)) as number;
    expect(await ttl('b1')).toBeGreaterThan(1_700_000);
    expect(await ttl('b2')).toBeGreaterThan(3_500_000);
    expect(await ttl('b3')).toBe(-1);
    expect(await ttl('b4')).toBeGreaterThan(80_000);
    expect((await proxy.req('GET', '/api/v1/cache/b2')).body).toEqual({
      key: 'b2',
      value: { deep: [1, 2] },
    });
    expect((await proxy.req('GET', '/api/v1/cache/b3')).body).toEqual({ key: 'b3', value: null });
  });

  it('accepts an empty item map and exactly max_batch_keys items, refuses one more', async () => {
    const empty = await proxy.req('POST', '/api/v1/cache/batch', { json: { items: {} } });
    expect(empty.status).toBe(200);
    expect(empty.body).toEqual({ stored: 0, failed: {} });
    const full = await proxy.req('POST', '/api/v1/cache/batch', {
      json: { items: items(1_000, 'k') },
    });
    expect(full.status).toBe(200);
    expect(full.body).toEqual({ stored: 1_000, failed: {} });
    const over = await proxy.req('POST', '/api/v1/cache/batch', {
      json: { items: items(1_001, 'o') },
    });
    expectError(over, 400, 'BATCH_TOO_LARGE');
    expect((await proxy.req('HEAD', '/api/v1/cache/o0')).status).toBe(404);
  });

  it('refuses the whole batch on one bad item and stores nothing', async () => {
    const cases: [Record<string, unknown>, number, string][] = [
      [{ ok1: { value: 1 }, bad: { value: 1, ttl: 'abc' } }, 400, 'INVALID_TTL'],
      [{ ok1: { value: 1 }, bad: { ttl: '1h' } }, 400, 'MISSING_VALUE'],
      [{ ok1: { value: 1 }, bad: 'not an object' }, 400, 'MISSING_VALUE'],
      [{ ok1: { value: 1 }, '': { value: 1 } }, 400, 'INVALID_KEY'],
      [{ ok1: { value: 1 }, ['k'.repeat(513)]: { value: 1 } }, 400, 'INVALID_KEY'],
      [{ ok1: { value: 1 }, bad: { value: 'z'.repeat(5_000) } }, 413, 'PAYLOAD_TOO_LARGE'],
    ];
    for (const [its, status, code] of cases) {
      expectError(
        await proxy.req('POST', '/api/v1/cache/batch', { json: { items: its } }),
        status,
        code,
      );
    }
    expect((await proxy.req('HEAD', '/api/v1/cache/ok1')).status).toBe(404);
    for (const body of [{}, { items: [] }, { items: null }, { items: 'x' }, [1]]) {
      expectError(
        await proxy.req('POST', '/api/v1/cache/batch', { json: body }),
        400,
        'INVALID_BODY',
      );
    }
  });

  it('refuses invalid JSON, a wrong content type and a body over max_body_bytes', async () => {
    const json = { 'content-type': 'application/json' };
    expectError(
      await proxy.req('POST', '/api/v1/cache/batch', { body: '{"items":', headers: json }),
      400,
      'INVALID_JSON',
    );
    expectError(
      await proxy.req('POST', '/api/v1/cache/batch', { body: '', headers: json }),
      400,
      'INVALID_JSON',
    );
    expectError(
      await proxy.req('POST', '/api/v1/cache/batch', {
        body: '{"items":{}}',
        headers: { 'content-type': 'text/plain' },
      }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    // 256 kb body limit: 100 items of 3 kb each are each under max_value_bytes.
    const big = await proxy.req('POST', '/api/v1/cache/batch', {
      json: { items: items(100, 'big', { value: 'q'.repeat(3_000) }) },
    });
    expectError(big, 413, 'PAYLOAD_TOO_LARGE');
    expect((await proxy.req('HEAD', '/api/v1/cache/big0')).status).toBe(404);
  });
});

describe('POST /api/v1/cache/batch/get', () => {
  it('returns items, missing and failed in one response', async () => {
    await proxy.req('POST', '/api/v1/cache/batch', {
      json: { items: { g1: { value: 'one' }, g2: { value: [2] }, g3: { value: { three: 3 } } } },
    });
    const res = await proxy.req('POST', '/api/v1/cache/batch/get', {
      json: { keys: ['g1', 'nope1', 'g2', 'g3', 'nope2'] },
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      items: { g1: 'one', g2: [2], g3: { three: 3 } },
      missing: ['nope1', 'nope2'],
      failed: {},
    });
  });

  it('handles duplicate keys once and empty lists', async () => {
    const dup = await proxy.req('POST', '/api/v1/cache/batch/get', {
      json: { keys: ['g1', 'g1', 'nope1', 'nope1', 'g2'] },
    });
    expect(dup.status).toBe(200);
    expect(dup.body).toEqual({ items: { g1: 'one', g2: [2] }, missing: ['nope1'], failed: {} });
    const empty = await proxy.req('POST', '/api/v1/cache/batch/get', { json: { keys: [] } });
    expect(empty.status).toBe(200);
    expect(empty.body).toEqual({ items: {}, missing: [], failed: {} });
  });

  it('accepts exactly max_batch_keys keys and refuses one more', async () => {
    const keys = Array.from({ length: 1_000 }, (_, i) => `k${i}`);
    const res = await proxy.req('POST', '/api/v1/cache/batch/get', { json: { keys } });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body.items)).toHaveLength(1_000);
    expect(res.body.items.k999).toEqual({ i: 999 });
    expectError(
      await proxy.req('POST', '/api/v1/cache/batch/get', { json: { keys: [...keys, 'k1000'] } }),
      400,
      'BATCH_TOO_LARGE',
    );
  });

  it('refuses bad key lists with INVALID_BODY / INVALID_KEY', async () => {
    for (const body of [{}, { keys: 'g1' }, { keys: null }, { keys: { a: 1 } }, ['g1']]) {
      expectError(
        await proxy.req('POST', '/api/v1/cache/batch/get', { json: body }),
        400,
        'INVALID_BODY',
      );
    }
    for (const keys of [[1], [null], [''], ['x'.repeat(513)], [['a']]]) {
      expectError(
        await proxy.req('POST', '/api/v1/cache/batch/get', { json: { keys } }),
        400,
        'INVALID_KEY',
      );
    }
  });
});

describe('DELETE /api/v1/cache/batch', () => {
  it('deletes keys across nodes, counting only keys that existed, duplicates once', async () => {
    await proxy.req('POST', '/api/v1/cache/batch', {
      json: { items: { d1: { value: 1 }, d2: { value: 2 }, d3: { value: 3 } } },
    });
    const res = await proxy.req('DELETE', '/api/v1/cache/batch', {
      json: { keys: ['d1', 'd2', 'd2', 'never'] },
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ deleted: 2, failed: {} });
    expect((await proxy.req('HEAD', '/api/v1/cache/d1')).status).toBe(404);
    expect((await proxy.req('HEAD', '/api/v1/cache/d2')).status).toBe(404);
    expect((await proxy.req('HEAD', '/api/v1/cache/d3')).status).toBe(200);
    const none = await proxy.req('DELETE', '/api/v1/cache/batch', { json: { keys: [] } });
    expect(none.body).toEqual({ deleted: 0, failed: {} });
  });

  it('applies the batch limit and key rules', async () => {
    const keys = Array.from({ length: 1_000 }, (_, i) => `k${i}`);
    const ok = await proxy.req('DELETE', '/api/v1/cache/batch', { json: { keys } });
    expect(ok.body).toEqual({ deleted: 1_000, failed: {} });
    expectError(
      await proxy.req('DELETE', '/api/v1/cache/batch', { json: { keys: [...keys, 'x'] } }),
      400,
      'BATCH_TOO_LARGE',
    );
    expectError(
      await proxy.req('DELETE', '/api/v1/cache/batch', { json: { keys: [''] } }),
      400,
      'INVALID_KEY',
    );
    expectError(
      await proxy.req('DELETE', '/api/v1/cache/batch', { json: {} }),
      400,
      'INVALID_BODY',
    );
    expectError(
      await proxy.req('DELETE', '/api/v1/cache/batch', {
        body: 'keys=a',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
  });
});

/** The fixture node that holds `key` according to the proxy's own ring. */
function ownerNode(key: string) {
  const id = proxy.server.rt.holder.current.ring.owner(key);
  const node = cluster.nodes.find((n) => n.address === id);
  if (!node) throw new Error(`no fixture node for ${id}`);
  return node;
}
