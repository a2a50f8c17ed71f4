import { cleanupAll, type RedisCluster, startRedisCluster } from '@dcache/test-utils';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enc, expectError, rawRequest, startProxy, type TestProxy } from './helpers.js';

let cluster: RedisCluster;
let proxy: TestProxy;

beforeAll(async () => {
  cluster = await startRedisCluster(2);
  proxy = await startProxy(cluster.addresses);
});

afterAll(async () => {
  await proxy?.close();
  await cleanupAll();
});

describe('content type', () => {
  it('accepts application/json with a charset parameter', async () => {
    const res = await proxy.req('PUT', '/api/v1/cache/cs', {
      body: '{"value":"ü"}',
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    expect(res.status).toBe(200);
    expect((await proxy.req('GET', '/api/v1/cache/cs')).body.value).toBe('ü');
  });
});

describe('never a 5xx for anything a client sends', () => {
  it('arbitrary keys: 200 and a faithful round trip, or 400 INVALID_KEY', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', minLength: 0, maxLength: 40 }), async (key) => {
        const put = await proxy.req('PUT', `/api/v1/cache/${enc(key)}`, { json: { value: key } });
        if (key === '' || !key.isWellFormed()) {
          expect(put.status).toBe(400);
          expect(put.body.error.code).toBe('INVALID_KEY');
          return;
        }
        if (key === '.' || key === '..') return; // fetch normalises these out of the URL
        expect(put.status, key).toBe(200);
        const got = await proxy.req('POST', '/api/v1/cache/batch/get', { json: { keys: [key] } });
        expect(got.body.items[key]).toBe(key);
      }),
      { numRuns: 50 },
    );
  });

  it('arbitrary JSON bodies on every body-taking call: a 2xx or a catalogue 4xx', async () => {
    const calls: [string, string][] = [
      ['PUT', '/api/v1/cache/fuzz'],
      ['POST', '/api/v1/cache/batch'],
      ['POST', '/api/v1/cache/batch/get'],
      ['DELETE', '/api/v1/cache/batch'],
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...calls),
        fc.oneof(
          fc.jsonValue({ maxDepth: 3 }),
          fc.record({ value: fc.jsonValue({ maxDepth: 2 }), ttl: fc.jsonValue({ maxDepth: 1 }) }),
          fc.record({ items: fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 })) }),
          fc.record({ keys: fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 5 }) }),
        ),
        async ([method, path], body) => {
          const res = await proxy.req(method, path, { json: body });
          expect(
            res.status,
            `${method} ${path} ${JSON.stringify(body)} → ${res.text}`,
          ).toBeLessThan(500);
          if (res.status >= 400) expect(res.body.error.code).toMatch(/^[A-Z_]+$/);
        },
      ),
      { numRuns: 120 },
    );
  });

  it('raw garbage: bad bodies, bad paths, bad headers', async () => {
    const cases: [string, string, string | undefined, Record<string, string>][] = [
      ['PUT', '/api/v1/cache/g', '\u0000\u0001', { 'content-type': 'application/json' }],
      ['PUT', '/api/v1/cache/g', '{"value": 1}}', { 'content-type': 'application/json' }],
      ['PUT', '/api/v1/cache/g', '{"value": 1}', { 'content-type': 'application/xml' }],
      ['POST', '/api/v1/cache/batch', '[[[[[[[[[[', { 'content-type': 'application/json' }],
      ['GET', '/api/v1/cache/%', undefined, {}],
      ['GET', '/api/v1/cache/%%', undefined, {}],
      ['GET', '/api/v1/cache/a%00b', undefined, {}],
      ['GET', '/api/v1/cache/keys?limit=1e3', undefined, {}],
      ['GET', '/api/v1/cache/keys?cursor=%FF', undefined, {}],
      ['GET', '/api/v1/cache/keys?pattern=', undefined, {}],
      ['GET', '/api/v1/cache/keys?limit=1&limit=2', undefined, {}],
      ['DELETE', '/api/v1/cache/', undefined, { authorization: 'Bearer' }],
      ['GET', '//api/v1/cache/x', undefined, {}],
      ['GET', '/api/v1/cache/x?%zz=1', undefined, {}],
    ];
    for (const [method, path, body, headers] of cases) {
      const res = await rawRequest(proxy.url, method, path, {
        ...(body !== undefined ? { body } : {}),
        headers,
      });
      expect(res.status, `${method} ${path} → ${res.text}`).toBeLessThan(500);
      expect(res.status).toBeGreaterThanOrEqual(200);
    }
    expect((await proxy.req('GET', '/health/live')).status).toBe(200);
  });
});

describe('rate limit', () => {
  it('answers 429 RATE_LIMITED past DC_RATE_LIMIT_MAX per window, never for health or metrics', async () => {
    const limited = await startProxy(cluster.addresses, {
      DC_RATE_LIMIT_MAX: '3',
      DC_RATE_LIMIT_WINDOW: '1m',
    });
    try {
      for (let i = 0; i < 3; i++)
        expect((await limited.req('GET', '/api/v1/cache/rl')).status).toBe(404);
      const res = await limited.req('GET', '/api/v1/cache/rl');
      expectError(res, 429, 'RATE_LIMITED');
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      for (let i = 0; i < 5; i++) {
        expect((await limited.req('GET', '/health')).status).toBe(200);
        expect((await limited.req('GET', '/health/ready')).status).toBe(200);
      }
      const m = await limited.req('GET', '/metrics');
      expect(m.status).toBe(200);
      expect(m.text).toMatch(/^dcache_rate_limited_total [1-9]/m);
    } finally {
      await limited.close();
    }
  });
});
