import { cleanupAll, type RedisCluster, startRedisCluster } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, startProxy, type TestProxy } from '../helpers.js';

let cluster: RedisCluster;
let proxy: TestProxy;

const USERS = Array.from({ length: 200 }, (_, i) => `user:${i}`);
const ORDERS = Array.from({ length: 50 }, (_, i) => `order:${i}`);
const ALL = [...USERS, ...ORDERS];

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  proxy = await startProxy(cluster.addresses);
  const res = await proxy.req('POST', '/api/v1/cache/batch', {
    json: { items: Object.fromEntries(ALL.map((k) => [k, { value: 1 }])) },
  });
  if (res.status !== 200) throw new Error(`seeding failed: ${res.text}`);
});

afterAll(async () => {
  await proxy?.close();
  await cleanupAll();
});

/** Follow cursors until null; bounded in pages. */
async function listAll(
  query: string,
  maxPages: number,
): Promise<{ keys: string[]; pages: number }> {
  const keys: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const q: string = cursor === null ? query : `${query}&cursor=${encodeURIComponent(cursor)}`;
    const res = await proxy.req('GET', `/api/v1/cache/keys?${q}`);
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body)).toEqual(expect.arrayContaining(['keys', 'cursor']));
    keys.push(...res.body.keys);
    cursor = res.body.cursor;
    pages++;
    if (pages > maxPages) throw new Error(`more than ${maxPages} pages for ${query}`);
  } while (cursor !== null);
  return { keys, pages };
}

describe('GET /api/v1/cache/keys', () => {
  it('every node holds part of the keys', async () => {
    for (const n of cluster.nodes) expect(await n.command('DBSIZE')).toBeGreaterThan(20);
  });

  it('pages 250 keys over 3 nodes with limit=7: every key exactly once, cursor null at the end', async () => {
    const { keys, pages } = await listAll('pattern=*&limit=7', 200);
    expect(new Set(keys).size).toBe(keys.length);
    expect([...keys].sort()).toEqual([...ALL].sort());
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(ALL.length / 7));
  });

  it('never returns more than limit keys in a page', async () => {
    let cursor: string | null = null;
    for (let i = 0; i < 5; i++) {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : '';
      const res = await proxy.req('GET', `/api/v1/cache/keys?limit=3${q}`);
      expect(res.body.keys.length).toBeLessThanOrEqual(3);
      cursor = res.body.cursor;
      expect(cursor).not.toBeNull();
    }
  });

  it('filters by pattern', async () => {
    const orders = await listAll('pattern=order:*&limit=10', 200);
    expect([...orders.keys].sort()).toEqual([...ORDERS].sort());
    const one = await listAll(`pattern=${encodeURIComponent('user:1?')}&limit=1000`, 50);
    expect([...one.keys].sort()).toEqual(Array.from({ length: 10 }, (_, i) => `user:1${i}`).sort());
    const none = await listAll('pattern=nothing-matches*', 50);
    expect(none.keys).toEqual([]);
  });

  it('defaults to pattern * and limit 1000', async () => {
    const res = await proxy.req('GET', '/api/v1/cache/keys');
    expect(res.status).toBe(200);
    expect([...res.body.keys].sort()).toEqual([...ALL].sort());
    expect(res.body.cursor).toBeNull();
  });

  it('refuses a bad limit or cursor with 400', async () => {
    for (const limit of ['0', '-1', 'abc', '1.5', '10001', '']) {
      expectError(
        await proxy.req('GET', `/api/v1/cache/keys?limit=${limit}`),
        400,
        'INVALID_QUERY',
      );
    }
    for (const cursor of [
      'garbage',
      'WzEsMiwzXQ',
      Buffer.from('["a","x",0]').toString('base64url'),
    ]) {
      expectError(
        await proxy.req('GET', `/api/v1/cache/keys?cursor=${cursor}`),
        400,
        'INVALID_CURSOR',
      );
    }
    expect((await proxy.req('GET', '/health/live')).status).toBe(200);
  });
});
