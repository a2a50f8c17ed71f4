import { cleanupAll, type RedisCluster, startRedisCluster } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessProxy, startInProcessProxy } from '../helpers/in-process-proxy.js';

// Protected mode, trusted proxies, the rate limit on both paths and the failed-auth throttle.
// Non-loopback clients are Fastify inject calls with a remoteAddress: no test uses a network
// address other than 127.0.0.1.

const ADMIN = 'adm-4b1d9e7c3a5f8e2d6c0b9a7f5e3d1c8b';
const CLUSTER = 'clu-9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d';
const REMOTE = '10.20.30.40';

let redis: RedisCluster;
const proxies: InProcessProxy[] = [];

async function proxy(env: Record<string, string>): Promise<InProcessProxy> {
  const p = await startInProcessProxy({
    DC_CACHE_ADDRESSES: redis.addressList,
    DC_CACHE_COMMAND_TIMEOUT: '5s',
    ...env,
  });
  proxies.push(p);
  return p;
}

beforeAll(async () => {
  redis = await startRedisCluster(2);
});

afterAll(async () => {
  for (const p of proxies) await p.close();
  await redis?.stopAll();
  await cleanupAll();
});

describe('protected mode (no admin token)', () => {
  let p: InProcessProxy;
  beforeAll(async () => {
    p = await proxy({});
  });

  it('logs one warning at start naming DC_ADMIN_TOKEN', () => {
    const warnings = p.logs.filter((l) => l.level === 40 && /protected mode/.test(l.msg));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.setting).toBe('DC_ADMIN_TOKEN');
  });

  it('refuses flush and ring changes from a non-loopback client with 403 PROTECTED_MODE', async () => {
    const calls = [
      { method: 'DELETE' as const, url: '/api/v1/cache/' },
      {
        method: 'POST' as const,
        url: '/api/v1/ring/nodes',
        payload: { address: '127.0.0.1:1' },
      },
      {
        method: 'DELETE' as const,
        url: `/api/v1/ring/nodes/${encodeURIComponent(redis.addresses[0] as string)}`,
      },
    ];
    for (const c of calls) {
      const r = await p.app.inject({ ...c, remoteAddress: REMOTE });
      expect(r.statusCode, `${c.method} ${c.url}`).toBe(403);
      const body = r.json() as { error: { code: string; message: string } };
      expect(body.error.code).toBe('PROTECTED_MODE');
      expect(body.error.message).toContain('DC_ADMIN_TOKEN');
    }
    // Nothing changed: both nodes are still in the ring.
    const ring = (await p.app.inject({ method: 'GET', url: '/api/v1/ring' })).json() as {
      nodes: { id: string }[];
    };
    expect(ring.nodes.map((n) => n.id).sort()).toEqual([...redis.addresses].sort());
  });

  it('refuses a request a local reverse proxy relays (X-Forwarded-For), even from loopback', async () => {
    const r = await p.app.inject({
      method: 'DELETE',
      url: '/api/v1/cache/',
      remoteAddress: '127.0.0.1',
      headers: { 'x-forwarded-for': '203.0.113.7' },
    });
    expect(r.statusCode).toBe(403);
    expect((r.json() as { error: { code: string } }).error.code).toBe('PROTECTED_MODE');
  });

  it('serves a loopback client, and leaves reads open to everyone', async () => {
    const local = await p.app.inject({
      method: 'DELETE',
      url: '/api/v1/cache/',
      remoteAddress: '127.0.0.1',
    });
    expect(local.statusCode).toBe(200);
    const v6 = await p.app.inject({
      method: 'DELETE',
      url: '/api/v1/cache/',
      remoteAddress: '::1',
    });
    expect(v6.statusCode).toBe(200);
    const read = await p.app.inject({
      method: 'GET',
      url: '/api/v1/cache/anything',
      remoteAddress: REMOTE,
    });
    expect(read.statusCode).toBe(404);
  });

  it('opens admin calls to everyone only when DC_ADMIN_PROTECTED_MODE=false, with a louder warning', async () => {
    const open = await proxy({ DC_ADMIN_PROTECTED_MODE: 'false' });
    const r = await open.app.inject({
      method: 'DELETE',
      url: '/api/v1/cache/',
      remoteAddress: REMOTE,
    });
    expect(r.statusCode).toBe(200);
    const warnings = open.logs.filter((l) => l.level === 40 && /ANY client/.test(l.msg));
    expect(warnings).toHaveLength(1);
  });

  it('with a token, a remote client with the token is served and nothing is logged as open', async () => {
    const tok = await proxy({ DC_ADMIN_TOKEN: ADMIN });
    const ok = await tok.app.inject({
      method: 'DELETE',
      url: '/api/v1/cache/',
      remoteAddress: REMOTE,
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(ok.statusCode).toBe(200);
    const none = await tok.app.inject({
      method: 'DELETE',
      url: '/api/v1/cache/',
      remoteAddress: '127.0.0.1',
    });
    expect(none.statusCode).toBe(401);
    expect(
      tok.logs.filter((l) => l.level === 40 && /protected mode|ANY client/.test(l.msg)),
    ).toEqual([]);
  });
});

describe('failed authentications are throttled per client', () => {
  let p: InProcessProxy;
  beforeAll(async () => {
    p = await proxy({
      DC_ADMIN_TOKEN: ADMIN,
      DC_CLUSTER_TOKEN: CLUSTER,
      DC_RATE_LIMIT_AUTH_FAILURES: '3',
      DC_RATE_LIMIT_AUTH_WINDOW: '1m',
    });
  });

  it('on admin routes: after 3 failures even the right token gets 429 AUTH_THROTTLED, other clients do not', async () => {
    const from = '10.0.0.1';
    for (let i = 0; i < 3; i++) {
      const r = await p.app.inject({
        method: 'DELETE',
        url: '/api/v1/cache/',
        remoteAddress: from,
        headers: { authorization: `Bearer guess-${i}` },
      });
      expect(r.statusCode).toBe(403);
    }
    const blocked = await p.app.inject({
      method: 'DELETE',
      url: '/api/v1/cache/',
      remoteAddress: from,
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(blocked.statusCode).toBe(429);
    expect((blocked.json() as { error: { code: string } }).error.code).toBe('AUTH_THROTTLED');
    const retry = Number(blocked.headers['retry-after']);
    expect(retry).toBeGreaterThan(0);
    expect(retry).toBeLessThanOrEqual(60);
    const other = await p.app.inject({
      method: 'DELETE',
      url: '/api/v1/cache/',
      remoteAddress: '10.0.0.2',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(other.statusCode).toBe(200);
    // Unauthenticated reads of the throttled client are not affected.
    const read = await p.app.inject({ method: 'GET', url: '/api/v1/cache/k', remoteAddress: from });
    expect(read.statusCode).toBe(404);
  });

  it('on /internal/ too (peer exchange), where the general rate limit does not apply', async () => {
    const from = '10.0.0.3';
    for (let i = 0; i < 3; i++) {
      const r = await p.app.inject({
        method: 'GET',
        url: '/internal/v1/membership',
        remoteAddress: from,
        headers: { authorization: `Bearer guess-${i}` },
      });
      expect(r.statusCode).toBe(403);
    }
    const blocked = await p.app.inject({
      method: 'GET',
      url: '/internal/v1/membership',
      remoteAddress: from,
      headers: { authorization: `Bearer ${CLUSTER}` },
    });
    expect(blocked.statusCode).toBe(429);
    expect((blocked.json() as { error: { code: string } }).error.code).toBe('AUTH_THROTTLED');
    const metrics = (await p.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^dcache_auth_failures_total\{outcome="forbidden"\} 6$/m);
    expect(metrics).toMatch(/^dcache_auth_failures_total\{outcome="throttled"\} [2-9]$/m);
  });
});

describe('the rate limit behind a trusted proxy, on the fast path too', () => {
  async function get(base: string, key: string, xff: string): Promise<Response> {
    return fetch(`${base}/api/v1/cache/${key}`, {
      headers: { 'x-forwarded-for': xff },
      signal: AbortSignal.timeout(10_000),
    });
  }

  it('counts each forwarded client in its own window when the relaying peer is trusted', async () => {
    const p = await proxy({
      DC_RATE_LIMIT_MAX: '3',
      DC_RATE_LIMIT_WINDOW: '1m',
      DC_SERVER_TRUSTED_PROXIES: '127.0.0.1',
    });
    const fastBefore = await fastCount(p.url);
    const a = [];
    for (let i = 0; i < 4; i++) a.push((await get(p.url, 'k', '198.51.100.1')).status);
    expect(a).toEqual([404, 404, 404, 429]);
    const b = (await get(p.url, 'k', '198.51.100.2')).status;
    expect(b).toBe(404);
    // All four of client A (the 429 too) and the one of B went through the fast path: it is on.
    expect((await fastCount(p.url)) - fastBefore).toBe(5);
    const served = await get(p.url, 'k', '198.51.100.3');
    expect(served.headers.get('x-ratelimit-limit')).toBe('3');
    expect(served.headers.get('x-ratelimit-remaining')).toBe('2');
  });

  it('ignores X-Forwarded-For from a peer that is not trusted: one window for everyone', async () => {
    const p = await proxy({ DC_RATE_LIMIT_MAX: '3', DC_RATE_LIMIT_WINDOW: '1m' });
    const statuses = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await get(p.url, 'k', `198.51.100.${10 + i}`)).status);
    expect(statuses).toEqual([404, 404, 404, 429]);
  });
});

/** dcache_http_fast_path_requests_total of the proxy at `base`. */
async function fastCount(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = /^dcache_http_fast_path_requests_total (\d+)/m.exec(text);
  return Number(m?.[1] ?? Number.NaN);
}
