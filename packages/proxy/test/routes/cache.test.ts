import { cleanupAll, type RedisCluster, startRedisCluster, waitFor } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enc, expectError, rawRequest, startProxy, type TestProxy } from '../helpers.js';

let cluster: RedisCluster;
let proxy: TestProxy;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  proxy = await startProxy(cluster.addresses, { DC_LIMITS_MAX_VALUE_BYTES: '4kb' });
});

afterAll(async () => {
  await proxy?.close();
  await cleanupAll();
});

describe('PUT/GET/HEAD/DELETE /api/v1/cache/{key}', () => {
  it('stores, reads, checks and deletes a key with exactly the SPEC bodies', async () => {
    const put = await proxy.req('PUT', '/api/v1/cache/user:1', {
      json: { value: { name: 'Ada', tags: ['x', 1, null, true] }, ttl: '1h' },
    });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ key: 'user:1', ttl_ms: 3_600_000 });

    const get = await proxy.req('GET', '/api/v1/cache/user:1');
    expect(get.status).toBe(200);
    expect(get.headers.get('content-type')).toMatch(/^application\/json/);
    expect(get.body).toEqual({ key: 'user:1', value: { name: 'Ada', tags: ['x', 1, null, true] } });

    const head = await proxy.req('HEAD', '/api/v1/cache/user:1');
    expect(head.status).toBe(200);
    expect(head.text).toBe('');

    const del = await proxy.req('DELETE', '/api/v1/cache/user:1');
    expect(del.status).toBe(200);
    expect(del.body).toEqual({ key: 'user:1', deleted: true });

    expectError(await proxy.req('GET', '/api/v1/cache/user:1'), 404, 'KEY_NOT_FOUND');
    const head404 = await proxy.req('HEAD', '/api/v1/cache/user:1');
    expect(head404.status).toBe(404);
    expect(head404.text).toBe('');
    expectError(await proxy.req('DELETE', '/api/v1/cache/user:1'), 404, 'KEY_NOT_FOUND');
  });

  it('round-trips every kind of JSON value byte for byte', async () => {
    const values: unknown[] = [
      'text',
      '',
      0,
      -1.5,
      1e21,
      true,
      false,
      null,
      [],
      {},
      [1, [2, [3]]],
      { nested: { 'a b': 'ü€😀', esc: '"\\\n\t' } },
    ];
    for (const [i, value] of values.entries()) {
      const put = await proxy.req('PUT', `/api/v1/cache/v${i}`, { json: { value } });
      expect(put.status, JSON.stringify(value)).toBe(200);
      const get = await proxy.req('GET', `/api/v1/cache/v${i}`);
      expect(get.status).toBe(200);
      expect(get.body).toEqual({ key: `v${i}`, value });
      expect(get.text).toBe(JSON.stringify({ key: `v${i}`, value }));
    }
  });

  it('overwrites a value and its TTL', async () => {
    await proxy.req('PUT', '/api/v1/cache/over', { json: { value: 1, ttl: '1h' } });
    const put = await proxy.req('PUT', '/api/v1/cache/over', { json: { value: 2 } });
    expect(put.body).toEqual({ key: 'over', ttl_ms: 0 });
    expect((await proxy.req('GET', '/api/v1/cache/over')).body.value).toBe(2);
    const node = await ownerNode('over');
    expect(await node.command('PTTL', 'over')).toBe(-1);
  });
});

describe('TTL', () => {
  it('expires a 300ms key for real', async () => {
    const put = await proxy.req('PUT', '/api/v1/cache/short', {
      json: { value: 'soon gone', ttl: '300ms' },
    });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ key: 'short', ttl_ms: 300 });
    const node = await ownerNode('short');
    const pttl = (await node.command('PTTL', 'short')) as number;
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(300);
    // Present right after the write (unless the machine stalled past the TTL).
    const first = await proxy.req('GET', '/api/v1/cache/short');
    expect([200, 404]).toContain(first.status);
    await waitFor(async () => (await proxy.req('GET', '/api/v1/cache/short')).status === 404, {
      timeout: 10_000,
      interval: 50,
      message: 'the 300ms key to expire',
    });
    expect((await proxy.req('HEAD', '/api/v1/cache/short')).status).toBe(404);
  });

  it('parses compound durations and numbers of seconds', async () => {
    const cases: [unknown, number][] = [
      ['1h30m', 5_400_000],
      [2, 2_000],
      [0.5, 500],
      ['30s', 30_000],
      ['30m', 1_800_000],
      ['500ms', 500],
      ['45', 45_000],
      [0, 0],
      ['0s', 0],
    ];
    for (const [ttl, ms] of cases) {
      const put = await proxy.req('PUT', '/api/v1/cache/ttl-case', { json: { value: 1, ttl } });
      expect(put.status, JSON.stringify(ttl)).toBe(200);
      expect(put.body.ttl_ms, JSON.stringify(ttl)).toBe(ms);
      const pttl = (await (await ownerNode('ttl-case')).command('PTTL', 'ttl-case')) as number;
      if (ms === 0) expect(pttl).toBe(-1);
      else {
        expect(pttl).toBeGreaterThan(ms - 5_000);
        expect(pttl).toBeLessThanOrEqual(ms);
      }
    }
  });

  it('applies the configured default TTL when the body has none', async () => {
    const p = await startProxy(cluster.addresses, { DC_CACHE_DEFAULT_TTL: '45s' });
    try {
      const put = await p.req('PUT', '/api/v1/cache/dflt', { json: { value: 'x' } });
      expect(put.body).toEqual({ key: 'dflt', ttl_ms: 45_000 });
      const pttl = (await (await ownerNode('dflt')).command('PTTL', 'dflt')) as number;
      expect(pttl).toBeGreaterThan(40_000);
      expect(pttl).toBeLessThanOrEqual(45_000);
      const explicit = await p.req('PUT', '/api/v1/cache/dflt', { json: { value: 'x', ttl: 0 } });
      expect(explicit.body.ttl_ms).toBe(0);
      const batch = await p.req('POST', '/api/v1/cache/batch', {
        json: { items: { 'dflt-b': { value: 1 } } },
      });
      expect(batch.status).toBe(200);
      const bp = (await (await ownerNode('dflt-b')).command('PTTL', 'dflt-b')) as number;
      expect(bp).toBeGreaterThan(40_000);
    } finally {
      await p.close();
    }
  });

  it('refuses bad TTLs with INVALID_TTL and stores nothing', async () => {
    for (const ttl of [
      'abc',
      '-1s',
      '1y',
      -5,
      '',
      true,
      '1h-5m',
      'ms',
      '1.5.5s',
      {},
      [1],
      '366d',
    ]) {
      const res = await proxy.req('PUT', '/api/v1/cache/bad-ttl', { json: { value: 1, ttl } });
      expectError(res, 400, 'INVALID_TTL');
    }
    expect((await proxy.req('HEAD', '/api/v1/cache/bad-ttl')).status).toBe(404);
  });
});

describe('keys', () => {
  it('accepts percent-encoded and unicode keys and round-trips them', async () => {
    const keys = [
      'a/b',
      ' ',
      'a b',
      'clé',
      '😀',
      '日本語',
      'a?b#c',
      '%',
      'x%2Fy',
      'key:with:colons',
    ];
    for (const key of keys) {
      const put = await proxy.req('PUT', `/api/v1/cache/${enc(key)}`, { json: { value: key } });
      expect(put.status, key).toBe(200);
      expect(put.body.key).toBe(key);
      const get = await proxy.req('GET', `/api/v1/cache/${enc(key)}`);
      expect(get.status, key).toBe(200);
      expect(get.body).toEqual({ key, value: key });
      const node = await ownerNode(key);
      expect(await node.command('EXISTS', key)).toBe(1);
    }
    // `a%2Fb` in the URL is the key "a/b"; `%20` is " ".
    expect((await proxy.req('GET', '/api/v1/cache/a%2Fb')).body.key).toBe('a/b');
    expect((await proxy.req('GET', '/api/v1/cache/%20')).body.key).toBe(' ');
    for (const key of keys) {
      expect((await proxy.req('DELETE', `/api/v1/cache/${enc(key)}`)).status, key).toBe(200);
    }
  });

  it('serves the keys "." and ".." when the client sends them unnormalised', async () => {
    for (const [key, path] of [
      ['.', '%2E'],
      ['..', '%2E%2E'],
    ] as const) {
      const put = await rawRequest(proxy.url, 'PUT', `/api/v1/cache/${path}`, {
        body: JSON.stringify({ value: key }),
      });
      expect(put.status, key).toBe(200);
      expect(put.body).toEqual({ key, ttl_ms: 0 });
      const get = await rawRequest(proxy.url, 'GET', `/api/v1/cache/${path}`);
      expect(get.body).toEqual({ key, value: key });
    }
  });

  it('does not reach a key named like a reserved route with single-key GET', async () => {
    // PUT stores "keys"/"stats"/"batch", but GET on those paths is the listing/stats route.
    for (const key of ['keys', 'stats', 'batch']) {
      const put = await proxy.req('PUT', `/api/v1/cache/${key}`, { json: { value: 'reserved' } });
      expect(put.status, key).toBe(200);
    }
    const keys = await proxy.req('GET', '/api/v1/cache/keys');
    expect(keys.body).toHaveProperty('cursor');
    const stats = await proxy.req('GET', '/api/v1/cache/stats');
    expect(stats.body).toHaveProperty('total');
    const got = await proxy.req('POST', '/api/v1/cache/batch/get', {
      json: { keys: ['keys', 'stats', 'batch'] },
    });
    expect(got.body.items).toEqual({ keys: 'reserved', stats: 'reserved', batch: 'reserved' });
  });

  it('accepts exactly 512 bytes and refuses 513 with INVALID_KEY', async () => {
    const k512 = `${'é'.repeat(255)}ab`;
    expect(Buffer.byteLength(k512)).toBe(512);
    const ok = await proxy.req('PUT', `/api/v1/cache/${enc(k512)}`, { json: { value: 1 } });
    expect(ok.status).toBe(200);
    const k513 = `${k512}c`;
    for (const m of ['PUT', 'GET', 'DELETE']) {
      const res = await proxy.req(m, `/api/v1/cache/${enc(k513)}`, {
        ...(m === 'PUT' ? { json: { value: 1 } } : {}),
      });
      expectError(res, 400, 'INVALID_KEY');
    }
    expect((await proxy.req('HEAD', `/api/v1/cache/${enc(k513)}`)).status).toBe(400);
  });

  it('refuses an empty key and invalid percent-encoding with INVALID_KEY', async () => {
    expectError(
      await proxy.req('PUT', '/api/v1/cache/', { json: { value: 1 } }),
      400,
      'INVALID_KEY',
    );
    expectError(await proxy.req('GET', '/api/v1/cache/'), 400, 'INVALID_KEY');
    for (const bad of ['%', '%zz', 'a%E9b', '%C3', '%ED%A0%80']) {
      const res = await proxy.req('GET', `/api/v1/cache/${bad}`);
      expectError(res, 400, 'INVALID_KEY');
      const put = await proxy.req('PUT', `/api/v1/cache/${bad}`, { json: { value: 1 } });
      expectError(put, 400, 'INVALID_KEY');
    }
  });
});

describe('bad bodies', () => {
  it('refuses invalid JSON, wrong content types, empty and valueless bodies with 4xx', async () => {
    const path = '/api/v1/cache/body-check';
    const json = { 'content-type': 'application/json' };
    expectError(
      await proxy.req('PUT', path, { body: '{"value": ', headers: json }),
      400,
      'INVALID_JSON',
    );
    expectError(await proxy.req('PUT', path, { body: '', headers: json }), 400, 'INVALID_JSON');
    expectError(
      await proxy.req('PUT', path, {
        body: '{"value":1}',
        headers: { 'content-type': 'text/plain' },
      }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    expectError(
      await proxy.req('PUT', path, {
        body: 'value=1',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    expectError(await proxy.req('PUT', path, {}), 400, 'MISSING_VALUE');
    expectError(await proxy.req('PUT', path, { json: { ttl: '1h' } }), 400, 'MISSING_VALUE');
    expectError(await proxy.req('PUT', path, { json: {} }), 400, 'MISSING_VALUE');
    for (const notObject of [[1], 'x', 3, null]) {
      const res = await proxy.req('PUT', path, { body: JSON.stringify(notObject), headers: json });
      expect(res.status, JSON.stringify(notObject)).toBe(400);
      expect(['INVALID_BODY', 'MISSING_VALUE']).toContain(res.body.error.code);
    }
    expect((await proxy.req('HEAD', path)).status).toBe(404);
  });

  it('refuses a value over max_value_bytes with 413 PAYLOAD_TOO_LARGE, accepts one at the limit', async () => {
    // DC_LIMITS_MAX_VALUE_BYTES=4kb: the serialized value is a string with its two quotes.
    const atLimit = 'x'.repeat(4_096 - 2);
    const ok = await proxy.req('PUT', '/api/v1/cache/big', { json: { value: atLimit } });
    expect(ok.status).toBe(200);
    const res = await proxy.req('PUT', '/api/v1/cache/big2', { json: { value: `${atLimit}x` } });
    expectError(res, 413, 'PAYLOAD_TOO_LARGE');
    const multibyte = 'é'.repeat(2_100);
    expectError(
      await proxy.req('PUT', '/api/v1/cache/big3', { json: { value: multibyte } }),
      413,
      'PAYLOAD_TOO_LARGE',
    );
    expect((await proxy.req('HEAD', '/api/v1/cache/big2')).status).toBe(404);
  });

  it('refuses a body far over the limit with 413 and keeps serving', async () => {
    const huge = JSON.stringify({ value: 'y'.repeat(2 * 1_048_576) });
    const res = await proxy.req('PUT', '/api/v1/cache/huge', {
      body: huge,
      headers: { 'content-type': 'application/json' },
    });
    expectError(res, 413, 'PAYLOAD_TOO_LARGE');
    expect((await proxy.req('GET', '/health/live')).status).toBe(200);
  });
});

/** The fixture node that holds `key` according to the proxy's own ring. */
async function ownerNode(key: string) {
  const id = proxy.server.rt.holder.current.ring.owner(key);
  const node = cluster.nodes.find((n) => n.address === id);
  if (!node) throw new Error(`no fixture node for ${id}`);
  return node;
}
