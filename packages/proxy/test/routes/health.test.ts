import { cleanupAll, type RedisCluster, startRedisCluster, waitFor } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, startProxy, type TestProxy } from '../helpers.js';

let cluster: RedisCluster;
let proxy: TestProxy;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  // Fast probes so that ejection and re-add are observed within seconds.
  proxy = await startProxy(cluster.addresses, {
    DC_HEALTH_INTERVAL: '200ms',
    DC_HEALTH_TIMEOUT: '200ms',
    DC_HEALTH_RETRY_INTERVAL: '200ms',
    DC_HEALTH_FAILURE_THRESHOLD: '2',
    DC_HEALTH_SUCCESS_THRESHOLD: '1',
  });
});

afterAll(async () => {
  await proxy?.close();
  await cleanupAll();
});

type NodeHealth = { id: string; healthy: boolean; state: string; connected: boolean };
const healthOf = async () => proxy.req('GET', '/health');

describe('/health, /health/live, /health/ready', () => {
  it('reports ok with every node when all serve', async () => {
    const res = await healthOf();
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('ok');
    expect(res.body.nodes.map((n: NodeHealth) => n.id).sort()).toEqual(
      [...cluster.addresses].sort(),
    );
    for (const n of res.body.nodes as NodeHealth[]) {
      expect(n.healthy).toBe(true);
      expect(n.state).toBe('closed');
      expect(n.connected).toBe(true);
    }
    expect(res.body.ring).toMatchObject({ nodes: 3, serving: 3 });
    expect(typeof res.body.ring.version).toBe('number');
    const live = await proxy.req('GET', '/health/live');
    expect(live.status).toBe(200);
    expect(live.body).toEqual({ status: 'ok' });
    const ready = await proxy.req('GET', '/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready' });
  });

  it('goes degraded with one node dead, down (503) with all dead, ok again after restart', async () => {
    const [a, b, c] = cluster.nodes;
    if (!a || !b || !c) throw new Error('fixture has 3 nodes');
    await a.kill();
    await waitFor(async () => (await healthOf()).body.status === 'degraded', {
      timeout: 15_000,
      message: '/health to say degraded',
    });
    const degraded = await healthOf();
    expect(degraded.status).toBe(200);
    const dead = degraded.body.nodes.find((n: NodeHealth) => n.id === a.address);
    expect(dead.healthy).toBe(false);
    expect(dead.state).not.toBe('closed');
    expect(typeof dead.last_error).toBe('string');
    expect(degraded.body.ring.serving).toBe(2);
    expect((await proxy.req('GET', '/health/ready')).status).toBe(200);
    // Keys of the ejected node are served by the next owner meanwhile.
    const put = await proxy.req('PUT', '/api/v1/cache/while-degraded', { json: { value: 1 } });
    expect(put.status).toBe(200);

    await Promise.all([b.kill(), c.kill()]);
    await waitFor(async () => (await healthOf()).status === 503, {
      timeout: 15_000,
      message: '/health to answer 503',
    });
    const down = await healthOf();
    expect(down.body.status).toBe('down');
    expect(down.body.ring.serving).toBe(0);
    const notReady = await proxy.req('GET', '/health/ready');
    expect(notReady.status).toBe(503);
    expect(notReady.body).toEqual({ status: 'down' });
    expect((await proxy.req('GET', '/health/live')).status).toBe(200);
    expectError(await proxy.req('GET', '/api/v1/cache/anything'), 503, 'NO_NODES');
    expectError(
      await proxy.req('PUT', '/api/v1/cache/anything', { json: { value: 1 } }),
      503,
      'NO_NODES',
    );
    const batch = await proxy.req('POST', '/api/v1/cache/batch/get', {
      json: { keys: ['x', 'y'] },
    });
    expectError(batch, 503, 'ALL_FAILED');
    expect(batch.body.failed).toEqual({ x: 'NO_NODES', y: 'NO_NODES' });

    await Promise.all([a.restart(), b.restart(), c.restart()]);
    await waitFor(async () => (await healthOf()).body.status === 'ok', {
      timeout: 20_000,
      message: '/health to say ok again',
    });
    expect((await proxy.req('GET', '/health/ready')).status).toBe(200);
  });

  it('is not ready while shutting down', async () => {
    proxy.server.rt.state.shuttingDown = true;
    try {
      const res = await proxy.req('GET', '/health/ready');
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ status: 'shutting_down' });
    } finally {
      proxy.server.rt.state.shuttingDown = false;
    }
  });
});

describe('/metrics, /openapi.json, unknown routes', () => {
  it('serves Prometheus text with the dcache metrics', async () => {
    await proxy.req('GET', '/api/v1/cache/metrics-probe');
    const res = await proxy.req('GET', '/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(res.text).toMatch(/^# HELP dcache_http_requests_total /m);
    expect(res.text).toMatch(/^dcache_cache_misses_total\{op="get"\} [1-9]/m);
    expect(res.text).toMatch(/^dcache_node_up\{node="127\.0\.0\.1:\d+"\} [01]$/m);
  });

  it('serves a valid OpenAPI 3 document that lists every data-path route', async () => {
    const res = await proxy.req('GET', '/openapi.json');
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(typeof doc.info.title).toBe('string');
    expect(typeof doc.info.version).toBe('string');
    const ops: string[] = [];
    for (const [path, item] of Object.entries(doc.paths as Record<string, object>)) {
      expect(path.startsWith('/')).toBe(true);
      const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      for (const [method, op] of Object.entries(item as Record<string, Record<string, unknown>>)) {
        expect(['get', 'put', 'post', 'delete', 'head', 'patch', 'options']).toContain(method);
        ops.push(`${method.toUpperCase()} ${path}`);
        const responses = op.responses as Record<string, { description?: string }>;
        expect(Object.keys(responses).length, `${method} ${path}`).toBeGreaterThan(0);
        for (const [code, r] of Object.entries(responses)) {
          expect(code).toMatch(/^([1-5]\d\d|[1-5]XX|default)$/);
          expect(typeof r.description).toBe('string');
        }
        const params = (op.parameters ?? []) as { in: string; name: string; required?: boolean }[];
        for (const name of templated) {
          const p = params.find((x) => x.in === 'path' && x.name === name);
          expect(p?.required, `${method} ${path} declares {${name}}`).toBe(true);
        }
      }
    }
    expect(ops).toEqual(
      expect.arrayContaining([
        'PUT /api/v1/cache/{key}',
        'GET /api/v1/cache/{key}',
        'HEAD /api/v1/cache/{key}',
        'DELETE /api/v1/cache/{key}',
        'POST /api/v1/cache/batch',
        'POST /api/v1/cache/batch/get',
        'DELETE /api/v1/cache/batch',
        'GET /api/v1/cache/keys',
        'GET /api/v1/cache/stats',
        'DELETE /api/v1/cache/',
        'GET /health',
        'GET /health/live',
        'GET /health/ready',
        'GET /api/v1/ring',
        'GET /api/v1/ring/owner/{key}',
      ]),
    );
  });

  it('answers unknown routes and methods with NOT_FOUND', async () => {
    expectError(await proxy.req('GET', '/nope'), 404, 'NOT_FOUND');
    expectError(await proxy.req('PATCH', '/api/v1/cache/a', { json: {} }), 404, 'NOT_FOUND');
    expectError(await proxy.req('GET', '/api/v2/cache/a'), 404, 'NOT_FOUND');
  });

  it('sets security headers (helmet)', async () => {
    const res = await proxy.req('GET', '/health/live');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBeTruthy();
  });
});
