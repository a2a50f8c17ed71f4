import { createServer, type Server } from 'node:net';
import { cleanupAll, type RedisServer, startRedis, waitFor } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, type TestProxy } from '../helpers.js';

// /health shows every caller why a node cannot serve as a class (error_class), and the messages
// themselves (addresses, ports, certificate names, Redis' words) only to admins: before, the
// public last_error turned "add a node" into a port scanner (issue 15, review P2).

const ADMIN = 'health-detail-admin-token';
const REMOTE = '203.0.113.50';

type Node = {
  id: string;
  healthy: boolean;
  error_class?: string;
  last_error?: string;
  connection_error?: string;
};

let redis: RedisServer;
let trap: Server;
let trapAddress: string;
let connections = 0;
const proxies: TestProxy[] = [];

beforeAll(async () => {
  redis = await startRedis();
  // A listener the allow-list refuses: it must never see a connection.
  trap = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => trap.listen(0, '127.0.0.2', () => r()));
  trapAddress = `127.0.0.2:${(trap.address() as { port: number }).port}`;
});

afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  await new Promise<void>((r) => trap.close(() => r()));
  await cleanupAll();
});

async function proxyWith(env: Record<string, string>): Promise<TestProxy> {
  const p = await startProxy([redis.address, trapAddress], {
    DC_CACHE_ALLOWED_ADDRESSES: '127.0.0.1/32',
    DC_HEALTH_INTERVAL: '200ms',
    DC_HEALTH_TIMEOUT: '200ms',
    DC_HEALTH_RETRY_INTERVAL: '200ms',
    DC_HEALTH_FAILURE_THRESHOLD: '2',
    ...env,
  });
  proxies.push(p);
  // The refused node fails its probes at once and is ejected through the normal path.
  await waitFor(
    async () =>
      ((await p.req('GET', '/health')).body.nodes as Node[]).some(
        (n) => n.id === trapAddress && !n.healthy,
      ),
    { timeout: 20_000, message: 'the refused node to be ejected' },
  );
  return p;
}

const nodeOf = (body: { nodes: Node[] }, id: string) => body.nodes.find((n) => n.id === id) as Node;

describe('/health: error class for everyone, detail for admins', () => {
  it('with an admin token: class only without it (or with a wrong one), detail with it', async () => {
    const p = await proxyWith({ DC_ADMIN_TOKEN: ADMIN });
    for (const headers of [{}, { authorization: 'Bearer wrong-token' }, { authorization: ADMIN }]) {
      const r = await p.req('GET', '/health', { headers });
      expect(r.status).toBe(200);
      expect(r.body.status).toBe('degraded');
      const bad = nodeOf(r.body, trapAddress);
      expect(bad).toMatchObject({ healthy: false, error_class: 'not_allowed' });
      expect(bad.last_error).toBeUndefined();
      expect(bad.connection_error).toBeUndefined();
      expect(r.text).not.toMatch(/outside|not allowed|ECONN|probe:/);
      const good = nodeOf(r.body, redis.address);
      expect(good.healthy).toBe(true);
      expect(good.error_class).toBeUndefined();
    }
    const admin = await p.req('GET', '/health', { headers: { authorization: `Bearer ${ADMIN}` } });
    const bad = nodeOf(admin.body, trapAddress);
    expect(bad.error_class).toBe('not_allowed');
    expect(bad.last_error).toMatch(/address not allowed/);
    expect(bad.connection_error).toMatch(/^address not allowed: 127\.0\.0\.2 is outside/);
    // The token is checked from a remote client the same way (no loopback privilege with one).
    const remote = await p.server.app.inject({
      method: 'GET',
      url: '/health',
      remoteAddress: REMOTE,
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(nodeOf(remote.json(), trapAddress).last_error).toMatch(/address not allowed/);
    const remoteAnon = await p.server.app.inject({
      method: 'GET',
      url: '/health',
      remoteAddress: REMOTE,
    });
    expect(nodeOf(remoteAnon.json(), trapAddress).last_error).toBeUndefined();

    // /api/v1/cache/stats (public) says the class too, not the detail.
    const stats = await p.req('GET', '/api/v1/cache/stats');
    const s = stats.body.nodes.find((n: { id: string }) => n.id === trapAddress);
    expect(s.error.code).toBe('NODE_UNAVAILABLE');
    expect(s.error.message).toMatch(/not_allowed/);
    expect(s.error.message).not.toMatch(/outside|address not allowed/);
    expect(connections).toBe(0);
  });

  it('without an admin token (protected mode): detail for clients on this host only', async () => {
    const p = await proxyWith({});
    const local = await p.req('GET', '/health');
    expect(nodeOf(local.body, trapAddress).last_error).toMatch(/address not allowed/);
    const remote = await p.server.app.inject({
      method: 'GET',
      url: '/health',
      remoteAddress: REMOTE,
    });
    const n = nodeOf(remote.json(), trapAddress);
    expect(n.error_class).toBe('not_allowed');
    expect(n.last_error).toBeUndefined();
    // A request a local reverse proxy relays is not a local client.
    const relayed = await p.req('GET', '/health', { headers: { 'x-forwarded-for': REMOTE } });
    expect(nodeOf(relayed.body, trapAddress).last_error).toBeUndefined();
    expect(connections).toBe(0);
  });

  it('protected mode off (admin open to all, a deliberate choice): detail for all', async () => {
    const p = await proxyWith({ DC_ADMIN_PROTECTED_MODE: 'false' });
    const remote = await p.server.app.inject({
      method: 'GET',
      url: '/health',
      remoteAddress: REMOTE,
    });
    expect(nodeOf(remote.json(), trapAddress).last_error).toMatch(/address not allowed/);
  });
});
