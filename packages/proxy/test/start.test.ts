import { createConnection } from 'node:net';
import {
  cleanupAll,
  freePort,
  type RedisCluster,
  startProcess,
  startRedisCluster,
  waitFor,
} from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, START_JS } from './helpers.js';

let cluster: RedisCluster;

beforeAll(async () => {
  cluster = await startRedisCluster(2);
});

afterAll(async () => {
  await cleanupAll();
});

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

const ringIds = async (base: string) =>
  ((await request(base, 'GET', '/api/v1/ring')).body.nodes as { id: string }[])
    .map((n) => n.id)
    .sort();

describe('npm start (node dist/start.js)', () => {
  it('without DC_CACHE_ADDRESSES: starts 3 local redis-servers, prints them, serves, stops them on SIGTERM', async () => {
    const port = await freePort();
    const p = await startProcess(process.execPath, [START_JS], {
      env: {
        DC_CACHE_ADDRESSES: '',
        DC_CONFIG: '',
        DC_SERVER_HOST: '127.0.0.1',
        DC_SERVER_PORT: String(port),
        DC_LOGGER_LEVEL: 'warn',
      },
      readyUrl: `http://127.0.0.1:${port}/health/ready`,
      readyTimeout: 30_000,
    });
    const base = `http://127.0.0.1:${port}`;
    try {
      const line = /started 3 local redis-servers: (\S+)/.exec(p.stdout());
      expect(line, p.output()).not.toBeNull();
      const addresses = (line?.[1] ?? '').split(',');
      expect(addresses).toHaveLength(3);
      for (const a of addresses) expect(a).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(await ringIds(base)).toEqual([...addresses].sort());
      const health = await request(base, 'GET', '/health');
      expect(health.body.status).toBe('ok');
      const put = await request(base, 'POST', '/api/v1/cache/batch', {
        json: {
          items: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`s${i}`, { value: i }])),
        },
      });
      expect(put.body).toEqual({ stored: 30, failed: {} });
      expect((await request(base, 'GET', '/api/v1/cache/s7')).body).toEqual({
        key: 's7',
        value: 7,
      });

      expect(await p.stop(15_000)).toBe(0);
      const ports = addresses.map((a) => Number(a.split(':')[1]));
      await waitFor(async () => (await Promise.all(ports.map(accepts))).every((up) => !up), {
        timeout: 10_000,
        message: 'the local redis-servers to be gone',
      });
    } finally {
      if (p.running) await p.stop(2_000);
    }
  });

  it('with DC_CACHE_ADDRESSES and DC_SERVER_PORT: uses exactly those nodes and that port', async () => {
    const port = await freePort();
    const p = await startProcess(process.execPath, [START_JS], {
      env: {
        DC_CONFIG: '',
        DC_CACHE_ADDRESSES: cluster.addressList,
        DC_SERVER_PORT: String(port),
        DC_LOGGER_LEVEL: 'warn',
      },
      readyUrl: `http://127.0.0.1:${port}/health/ready`,
    });
    try {
      const base = `http://127.0.0.1:${port}`;
      expect(await ringIds(base)).toEqual([...cluster.addresses].sort());
      expect(p.output()).not.toContain('local redis-servers');
      const put = await request(base, 'PUT', '/api/v1/cache/via-start', { json: { value: 'x' } });
      expect(put.status).toBe(200);
      const holders = await Promise.all(cluster.nodes.map((n) => n.command('EXISTS', 'via-start')));
      expect(holders.filter((h) => h === 1)).toHaveLength(1);
      expect(await p.stop(15_000)).toBe(0);
      // The given nodes are not ours to stop.
      for (const n of cluster.nodes) expect(await n.command('PING')).toBe('PONG');
    } finally {
      if (p.running) await p.stop(2_000);
    }
  });

  it('says in one line how to get redis-server when it is missing', async () => {
    const p = await startProcess(process.execPath, [START_JS], {
      env: {
        DC_CACHE_ADDRESSES: '',
        DC_CONFIG: '',
        REDIS_SERVER_BIN: '/nonexistent/redis-server',
        DC_LOGGER_LEVEL: 'warn',
      },
    });
    const code = await p.exited;
    expect(code).toBe(1);
    const lines = p
      .stderr()
      .split('\n')
      .filter((l) => l.trim() !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/redis-server not found: install it .*DC_CACHE_ADDRESSES/);
  });
});
