import { cleanupAll, type RedisCluster, startRedisCluster } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCurl, runCurl } from './curl.js';
import { startProxy, type TestProxy } from './helpers.js';

/** The API examples of the Go predecessor's README, verbatim: its users run exactly these. */
const SEED = {
  put: `curl -X PUT "http://localhost:8080/api/v1/cache/mi_clave" \\
  -H "Content-Type: application/json" \\
  -d '{"value": "mi_valor", "ttl": "1h"}'`,
  get: `curl -X GET "http://localhost:8080/api/v1/cache/mi_clave"`,
  head: `curl -I "http://localhost:8080/api/v1/cache/mi_clave"`,
  del: `curl -X DELETE "http://localhost:8080/api/v1/cache/mi_clave"`,
  batch: `curl -X POST "http://localhost:8080/api/v1/cache/batch" \\
  -H "Content-Type: application/json" \\
  -d '{
    "items": {
      "clave1": {"value": "valor1", "ttl": "30m"},
      "clave2": {"value": "valor2", "ttl": "1h"},
      "clave3": {"value": "valor3"}
    }
  }'`,
  batchGet: `curl -X POST "http://localhost:8080/api/v1/cache/batch/get" \\
  -H "Content-Type: application/json" \\
  -d '{"keys": ["clave1", "clave2", "clave3"]}'`,
  batchDel: `curl -X DELETE "http://localhost:8080/api/v1/cache/batch" \\
  -H "Content-Type: application/json" \\
  -d '{"keys": ["clave1", "clave2"]}'`,
  keys: `curl -X GET "http://localhost:8080/api/v1/cache/keys?pattern=*"`,
  stats: `curl -X GET "http://localhost:8080/api/v1/cache/stats"`,
  flush: `curl -X DELETE "http://localhost:8080/api/v1/cache/"`,
  health: `curl -X GET "http://localhost:8080/health"`,
  health2: `curl http://localhost:8080/health`,
  stats2: `curl http://localhost:8080/api/v1/cache/stats`,
};

let cluster: RedisCluster;
let proxy: TestProxy;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  proxy = await startProxy(cluster.addresses);
});

afterAll(async () => {
  await proxy?.close();
  await cleanupAll();
});

describe("the seed README's curl examples", () => {
  it('parse to the requests the seed documents', () => {
    expect(parseCurl(SEED.head).method).toBe('HEAD');
    expect(parseCurl(SEED.put)).toEqual({
      method: 'PUT',
      url: 'http://localhost:8080/api/v1/cache/mi_clave',
      headers: { 'content-type': 'application/json' },
      body: '{"value": "mi_valor", "ttl": "1h"}',
    });
    expect(JSON.parse(parseCurl(SEED.batch).body ?? '')).toEqual({
      items: {
        clave1: { value: 'valor1', ttl: '30m' },
        clave2: { value: 'valor2', ttl: '1h' },
        clave3: { value: 'valor3' },
      },
    });
  });

  it('work unchanged, in README order, with the SPEC bodies', async () => {
    const run = (cmd: string) => runCurl(cmd, proxy.url);

    const put = await run(SEED.put);
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ key: 'mi_clave', ttl_ms: 3_600_000 });

    const get = await run(SEED.get);
    expect(get.status).toBe(200);
    expect(get.body).toEqual({ key: 'mi_clave', value: 'mi_valor' });

    const head = await run(SEED.head);
    expect(head.status).toBe(200);
    expect(head.text).toBe('');

    const del = await run(SEED.del);
    expect(del.status).toBe(200);
    expect(del.body).toEqual({ key: 'mi_clave', deleted: true });
    expect((await run(SEED.head)).status).toBe(404);

    const batch = await run(SEED.batch);
    expect(batch.status).toBe(200);
    expect(batch.body).toEqual({ stored: 3, failed: {} });

    const batchGet = await run(SEED.batchGet);
    expect(batchGet.status).toBe(200);
    expect(batchGet.body).toEqual({
      items: { clave1: 'valor1', clave2: 'valor2', clave3: 'valor3' },
      missing: [],
      failed: {},
    });

    const batchDel = await run(SEED.batchDel);
    expect(batchDel.status).toBe(200);
    expect(batchDel.body).toEqual({ deleted: 2, failed: {} });

    const keys = await run(SEED.keys);
    expect(keys.status).toBe(200);
    expect(keys.body.keys).toEqual(['clave3']);
    expect(keys.body.cursor).toBeNull();

    for (const cmd of [SEED.stats, SEED.stats2]) {
      const stats = await run(cmd);
      expect(stats.status).toBe(200);
      expect(stats.body.total.keys).toBe(1);
      expect(stats.body.nodes).toHaveLength(3);
    }

    const flush = await run(SEED.flush);
    expect(flush.status).toBe(200);
    expect(flush.body.flushed_nodes).toBe(3);
    const after = await run(SEED.keys);
    expect(after.body.keys).toEqual([]);

    for (const cmd of [SEED.health, SEED.health2]) {
      const health = await run(cmd);
      expect(health.status).toBe(200);
      expect(health.body.status).toBe('ok');
      expect(health.body.nodes).toHaveLength(3);
    }
  });
});
