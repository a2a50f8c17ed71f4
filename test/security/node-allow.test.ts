// Issue 15 part 4, review P2: any address could become a node, every proxy then connected to it
// and sent DC_CACHE_PASSWORD, and the public /health told the outcome (a port scanner). With
// DC_CACHE_ALLOWED_ADDRESSES, a member outside the list gets no connection at all (its commands
// fail at once, health ejects it, /health says `not_allowed`), and the admin API refuses to add it.
import { createServer, type Server } from 'node:net';
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
import { call as jsonCall } from '../reliability/harness.js';

const ADMIN = 'adm-node-allow-71c3';
const PASSWORD = 'redis-pw-never-to-a-stranger-4f0b';

type Node = {
  id: string;
  healthy: boolean;
  connected: boolean;
  state: string;
  error_class?: string;
  last_error?: string;
  connection_error?: string;
};

/** A listener on 127.0.0.2 (loopback, outside the list) recording what reaches it. */
interface Trap {
  server: Server;
  address: string;
  seen: { connections: number; bytes: string };
}

async function trap(): Promise<Trap> {
  const seen = { connections: 0, bytes: '' };
  const server = createServer((s) => {
    seen.connections++;
    s.on('data', (d) => {
      seen.bytes += d.toString('latin1');
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.2', () => r()));
  return { server, seen, address: `127.0.0.2:${(server.address() as { port: number }).port}` };
}

/** One JSON call with an optional body and bearer token (the harness' call, positional). */
const call = (url: string, method: string, path: string, body?: unknown, token?: string) =>
  jsonCall(url, method, path, {
    ...(body !== undefined ? { json: body } : {}),
    ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
  });

describe('node allow-list (DC_CACHE_ALLOWED_ADDRESSES)', () => {
  let good: RedisServer;
  let spare: RedisServer;
  let seedTrap: Trap;
  let addTrap: Trap;
  let proxy: SpawnedProxy;

  beforeAll(async () => {
    [good, spare] = await Promise.all([
      startRedis({ password: PASSWORD }),
      startRedis({ password: PASSWORD }),
    ]);
    [seedTrap, addTrap] = await Promise.all([trap(), trap()]);
    proxy = await spawnProxy({
      ...CI_SAFE_ENV,
      DC_LOGGER_LEVEL: 'info',
      DC_ADMIN_TOKEN: ADMIN,
      DC_CACHE_ADDRESSES: `${good.address},${seedTrap.address}`,
      DC_CACHE_PASSWORD: PASSWORD,
      // 127.0.0.1 and ::1 (what localhost may resolve to), not 127.0.0.2.
      DC_CACHE_ALLOWED_ADDRESSES: '127.0.0.1/32,::1/128',
      DC_HEALTH_INTERVAL: '1s',
      DC_HEALTH_TIMEOUT: '1s',
      DC_HEALTH_FAILURE_THRESHOLD: '2',
      DC_HEALTH_RETRY_INTERVAL: '300ms',
    });
  });

  afterAll(async () => {
    await proxy?.proc.stop();
    for (const t of [seedTrap, addTrap])
      if (t) await new Promise<void>((r) => t.server.close(() => r()));
    await cleanupAll();
  });

  it('a member outside the list gets no connection and no password; health ejects it', async () => {
    const line = proxy.proc
      .output()
      .split('\n')
      .find((l) => l.includes('node address not allowed'));
    expect(line).toBeDefined();
    expect(line).toContain(seedTrap.address);
    expect(line).toContain('"class":"not_allowed"');

    await waitFor(
      async () => {
        const h = await call(proxy.url, 'GET', '/health');
        return (h.body.nodes as Node[]).some((n) => n.id === seedTrap.address && !n.healthy);
      },
      { timeout: 30_000, message: 'the refused member to be ejected' },
    );
    const h = await call(proxy.url, 'GET', '/health');
    expect(h.status).toBe(200);
    expect(h.body.status).toBe('degraded');
    const bad = (h.body.nodes as Node[]).find((n) => n.id === seedTrap.address) as Node;
    expect(bad).toMatchObject({ healthy: false, connected: false, error_class: 'not_allowed' });
    expect(bad.last_error).toBeUndefined();
    const detail = await call(proxy.url, 'GET', '/health', undefined, ADMIN);
    const badDetail = (detail.body.nodes as Node[]).find((n) => n.id === seedTrap.address);
    expect(badDetail?.connection_error).toMatch(/address not allowed: 127\.0\.0\.2 is outside/);

    // Every key is served by the allowed node.
    for (let i = 0; i < 30; i++)
      expect((await call(proxy.url, 'PUT', `/api/v1/cache/allow:${i}`, { value: i })).status).toBe(
        200,
      );
    for (let i = 0; i < 30; i++)
      expect((await call(proxy.url, 'GET', `/api/v1/cache/allow:${i}`)).body.value).toBe(i);
    expect(await good.command('DBSIZE')).toBe(30);

    expect(seedTrap.seen.connections).toBe(0);
    expect(seedTrap.seen.bytes).not.toContain(PASSWORD);
  });

  it('the admin API refuses to add an address outside the list (400 NODE_NOT_ALLOWED), changing nothing', async () => {
    const before = (await call(proxy.url, 'GET', '/api/v1/ring')).body;
    for (const address of [addTrap.address, '169.254.169.254:80', '10.0.0.1:6379']) {
      for (const body of [{ address }, { address, id: 'sneaky' }]) {
        const r = await call(proxy.url, 'POST', '/api/v1/ring/nodes', body, ADMIN);
        expect(r.status, r.text).toBe(400);
        expect(r.body.error.code).toBe('NODE_NOT_ALLOWED');
        expect(r.body.error.message).toContain('DC_CACHE_ALLOWED_ADDRESSES');
      }
    }
    // A malformed address is still INVALID_ADDRESS, and the token still comes first.
    const bad = await call(proxy.url, 'POST', '/api/v1/ring/nodes', { address: 'nope' }, ADMIN);
    expect(bad.body.error.code).toBe('INVALID_ADDRESS');
    const anon = await call(proxy.url, 'POST', '/api/v1/ring/nodes', { address: addTrap.address });
    expect(anon.status).toBe(401);

    const after = (await call(proxy.url, 'GET', '/api/v1/ring')).body;
    expect(after.version).toBe(before.version);
    expect(after.checksum).toBe(before.checksum);
    expect(addTrap.seen.connections).toBe(0);
  });

  it('a host name whose every address is inside the list is allowed (and served)', async () => {
    const port = spare.port;
    const r = await call(
      proxy.url,
      'POST',
      '/api/v1/ring/nodes',
      { address: `localhost:${port}`, id: 'by-name' },
      ADMIN,
    );
    expect(r.status, r.text).toBe(201);
    await waitFor(
      async () => {
        const h = await call(proxy.url, 'GET', '/health');
        const n = (h.body.nodes as Node[]).find((x) => x.id === 'by-name');
        return n?.connected === true && n.healthy;
      },
      { timeout: 30_000, message: 'the node added by name to connect' },
    );
    await waitFor(
      async () => {
        for (let i = 0; i < 30; i++)
          await call(proxy.url, 'PUT', `/api/v1/cache/named:${i}`, { value: i });
        return Number(await spare.command('DBSIZE')) > 0;
      },
      { timeout: 30_000, message: 'keys to land on the node added by name' },
    );
  });
});
