import { Ring } from '@dcache/ring';
import {
  cleanupAll,
  freePort,
  type RedisCluster,
  startProcess,
  startRedisCluster,
  type TestProcess,
  waitFor,
} from '@dcache/test-utils';
import { Agent, request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN_JS, request } from './helpers.js';

let cluster: RedisCluster;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
});

afterAll(async () => {
  for (const n of cluster?.nodes ?? []) n.cont();
  await cleanupAll();
});

/** Start `node dist/main.js` over the fixture; nobody is ejected while a node is paused. */
async function spawnProxy(shutdownTimeout: string): Promise<{ p: TestProcess; base: string }> {
  const port = await freePort();
  const p = await startProcess(process.execPath, [MAIN_JS], {
    env: {
      DC_CONFIG: '',
      DC_SERVER_HOST: '127.0.0.1',
      DC_SERVER_PORT: String(port),
      DC_CACHE_ADDRESSES: cluster.addressList,
      DC_CACHE_COMMAND_TIMEOUT: '30s',
      DC_HEALTH_FAILURE_THRESHOLD: '1000',
      DC_HEALTH_INTERVAL: '30s',
      DC_HEALTH_RETRY_INTERVAL: '30s',
      DC_SERVER_SHUTDOWN_TIMEOUT: shutdownTimeout,
      DC_LOGGER_LEVEL: 'info',
    },
    readyUrl: `http://127.0.0.1:${port}/health/ready`,
  });
  return { p, base: `http://127.0.0.1:${port}` };
}

/** The proxy's in-flight gauge (the /metrics scrape itself is not counted). */
async function inflight(base: string): Promise<number> {
  const m = await request(base, 'GET', '/metrics');
  const line = /^dcache_http_inflight_requests (\d+)/m.exec(m.text);
  return Number(line?.[1] ?? -1);
}

function keysOn(address: string, n: number, prefix: string): string[] {
  const ring = new Ring(cluster.addresses.map((id) => ({ id })));
  const out: string[] = [];
  for (let i = 0; out.length < n && i < 100_000; i++) {
    if (ring.owner(`${prefix}${i}`) === address) out.push(`${prefix}${i}`);
  }
  return out;
}

type Outcome = { ok: true; status: number; body: string } | { ok: false; error: string };

describe('graceful shutdown of node dist/main.js', () => {
  it('SIGTERM during a burst: every in-flight request gets its full response, then exit 0', async () => {
    const { p, base } = await spawnProxy('15s');
    const paused = cluster.nodes[0];
    if (!paused) throw new Error('fixture has 3 nodes');
    const slowKeys = keysOn(paused.address, 150, 'slow-');
    const fastKeys = keysOn(cluster.nodes[1]?.address ?? '', 50, 'fast-');
    const agent = new Agent({ connections: 256, keepAliveTimeout: 60_000, pipelining: 1 });
    try {
      // Warm the keep-alive connections, then pause one Redis node: requests for its keys hang
      // inside the proxy (in flight) until the node continues.
      const warm = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          undiciRequest(`${base}/api/v1/cache/warm-${i}`, { dispatcher: agent }).then(async (r) => {
            await r.body.text();
            return r.statusCode;
          }),
        ),
      );
      expect(warm.every((s) => s === 404)).toBe(true);
      paused.stop();

      const send = async (
        path: string,
        method: 'PUT' | 'GET',
        body?: unknown,
      ): Promise<Outcome> => {
        try {
          const r = await undiciRequest(`${base}${path}`, {
            method,
            dispatcher: agent,
            headers: body === undefined ? {} : { 'content-type': 'application/json' },
            ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          });
          return { ok: true, status: r.statusCode, body: await r.body.text() };
        } catch (e) {
          return { ok: false, error: `${(e as Error).name}: ${(e as Error).message}` };
        }
      };
      const slow = slowKeys.map((k, i) =>
        i % 2 === 0
          ? send(`/api/v1/cache/${k}`, 'PUT', { value: { k, i } })
          : send(`/api/v1/cache/${k}`, 'GET'),
      );
      const fast = fastKeys.map((k) => send(`/api/v1/cache/${k}`, 'PUT', { value: k }));
      const fastDone = await Promise.all(fast);
      for (const o of fastDone) expect(o).toMatchObject({ ok: true, status: 200 });
      // All 150 slow requests have reached the proxy and wait on the paused node.
      await waitFor(async () => (await inflight(base)) >= 150, {
        timeout: 20_000,
        interval: 50,
        message: '150 requests in flight in the proxy',
      });

      const t0 = Date.now();
      p.signal('SIGTERM');
      await waitFor(() => p.output().includes('shutting down'), {
        timeout: 10_000,
        message: 'the proxy to log that it is shutting down',
      });
      // It stops accepting new connections at once...
      await waitFor(
        async () => {
          try {
            await fetch(`${base}/health/live`, { signal: AbortSignal.timeout(1_000) });
            return false;
          } catch {
            return true;
          }
        },
        { timeout: 5_000, message: 'new connections to be refused' },
      );
      expect(p.running).toBe(true);
      // ...and finishes what it holds once Redis answers again.
      paused.cont();
      const outcomes = await Promise.all(slow);
      const code = await p.exited;
      const elapsed = Date.now() - t0;

      // No socket error for any of them.
      expect(outcomes.filter((o) => !o.ok)).toEqual([]);
      outcomes.forEach((o, i) => {
        if (!o.ok) return;
        const k = slowKeys[i] as string;
        if (i % 2 === 0) {
          expect(o.status).toBe(200);
          expect(JSON.parse(o.body)).toEqual({ key: k, ttl_ms: 0 });
        } else {
          expect(o.status).toBe(404);
          expect(JSON.parse(o.body).error.code).toBe('KEY_NOT_FOUND');
        }
      });
      expect(code).toBe(0);
      // Drained, not cut off: the connections of finished requests closed, no timeout was needed.
      expect(p.output()).not.toContain('drain timeout reached');
      expect(elapsed).toBeLessThan(12_000);
      // The writes acknowledged during the drain are on the node.
      expect(await paused.command('EXISTS', slowKeys[0] as string)).toBe(1);
    } finally {
      paused.cont();
      await agent.close().catch(() => {});
      if (p.running) await p.stop(2_000);
    }
  });

  it('gives up on requests still hanging after shutdown_timeout and exits 0 anyway', async () => {
    const { p, base } = await spawnProxy('1s');
    const paused = cluster.nodes[2];
    if (!paused) throw new Error('fixture has 3 nodes');
    const agent = new Agent({ connections: 16 });
    try {
      paused.stop();
      const keys = keysOn(paused.address, 10, 'stuck-');
      const hanging = keys.map((k) =>
        undiciRequest(`${base}/api/v1/cache/${k}`, { dispatcher: agent }).then(
          async (r) => ({ status: r.statusCode, body: await r.body.text() }),
          (e: Error) => ({ error: e.message }),
        ),
      );
      await waitFor(async () => (await inflight(base)) >= 10, {
        timeout: 20_000,
        message: '10 requests in flight',
      });
      const t0 = Date.now();
      p.signal('SIGTERM');
      const code = await p.exited;
      const elapsed = Date.now() - t0;
      expect(code).toBe(0);
      expect(elapsed).toBeGreaterThanOrEqual(900);
      expect(elapsed).toBeLessThan(8_000);
      expect(p.output()).toContain('drain timeout reached');
      const results = await Promise.all(hanging);
      expect(results).toHaveLength(10);
    } finally {
      paused.cont();
      await agent.close().catch(() => {});
      if (p.running) await p.stop(2_000);
    }
  });
});
