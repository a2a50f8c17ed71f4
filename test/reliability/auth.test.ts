import {
  cleanupAll,
  freePort,
  type RedisCluster,
  type RedisServer,
  startProcess,
  startRedis,
  startRedisCluster,
  waitFor,
} from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  CLUSTER_TOKEN,
  call,
  errorBodyProblem,
  type JsonResponse,
  PROXY_MAIN,
  type ProxyProcess,
  report,
  startProxy,
} from './harness.js';

type Creds = Record<string, string>;

/** Ways of (not) presenting a token, and the status each must get. */
function variants(right: string, other: string): [string, Creds, 401 | 403][] {
  return [
    ['no token', {}, 401],
    ['wrong token', { authorization: 'Bearer not-the-token' }, 403],
    ['the other service’s token', { authorization: `Bearer ${other}` }, 403],
    ['X-Admin-Token header', { 'x-admin-token': right }, 401],
    ['X-Cluster-Token header', { 'x-cluster-token': right }, 401],
    ['Authorization: Token <t>', { authorization: `Token ${right}` }, 401],
    ['Authorization: <t> (no scheme)', { authorization: right }, 401],
    [
      'Authorization: Basic',
      { authorization: `Basic ${Buffer.from(`admin:${right}`).toString('base64')}` },
      401,
    ],
    ['token in the query string', {}, 401],
    ['Bearer with a prefix of the token', { authorization: `Bearer ${right.slice(0, -1)}` }, 403],
    ['Bearer <t> plus junk', { authorization: `Bearer ${right}x` }, 403],
  ];
}

describe('auth matrix: admin and /internal/v1 routes × token variants', () => {
  let redis: RedisCluster;
  let spare: RedisServer;
  let proxy: ProxyProcess;

  beforeAll(async () => {
    redis = await startRedisCluster(3);
    spare = await startRedis();
    const deadPeer = `http://127.0.0.1:${await freePort()}`;
    proxy = await startProxy({
      DC_CACHE_ADDRESSES: redis.addressList,
      DC_ADMIN_TOKEN: ADMIN_TOKEN,
      DC_CLUSTER_TOKEN: CLUSTER_TOKEN,
      // A peer that never answers: its failures are logged too (without the token).
      DC_CLUSTER_PEERS: deadPeer,
      DC_CLUSTER_SYNC_INTERVAL: '200ms',
      DC_LOGGER_LEVEL: 'debug',
      // The matrix sends ~60 wrong tokens from one client on purpose; the throttle that would
      // answer 429 after 10 has its own test (test/security/http-guards.test.ts).
      DC_RATE_LIMIT_AUTH_FAILURES: '0',
    });
  });

  afterAll(async () => {
    await proxy?.proc.stop();
    await cleanupAll();
  });

  it('answers exactly 401 / 403 / success, changes nothing when refused, and never logs a token', async () => {
    const sentinel = await call(proxy.url, 'PUT', '/api/v1/cache/auth-sentinel', {
      json: { value: 'kept' },
    });
    expect(sentinel.status).toBe(200);
    const ringBefore = (await call(proxy.url, 'GET', '/api/v1/ring')).body;
    const victim = encodeURIComponent(redis.addresses[0]!);
    const membership = (
      await call(proxy.url, 'GET', '/internal/v1/membership', {
        headers: { authorization: `Bearer ${CLUSTER_TOKEN}` },
      })
    ).body;
    expect(membership.doc).toBeDefined();
    const from = { id: 'auth-test', url: '' };
    const digestBody = { from, peers: [], seeded: false, digest: membership.digest };
    const syncBody = { from, peers: [], seeded: false, doc: membership.doc };

    // Requests that would change something if the token check let them through.
    const admin: [string, string, unknown][] = [
      ['DELETE', '/api/v1/cache/', undefined],
      ['POST', '/api/v1/ring/nodes', { address: spare.address }],
      ['DELETE', `/api/v1/ring/nodes/${victim}`, undefined],
      ['PATCH', `/api/v1/ring/nodes/${victim}`, { weight: 3 }],
    ];
    const internal: [string, string, unknown][] = [
      ['GET', '/internal/v1/membership', undefined],
      ['POST', '/internal/v1/membership/digest', digestBody],
      ['POST', '/internal/v1/membership/sync', syncBody],
    ];

    const rows: string[] = [];
    const wrong: string[] = [];
    const check = (what: string, r: JsonResponse, want: number) => {
      rows.push(`${what} → ${r.status} ${r.body?.error?.code ?? ''}`);
      const problem = r.status >= 400 ? errorBodyProblem(r.status, r.text) : undefined;
      const code = want === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN';
      if (r.status !== want || r.body?.error?.code !== code || problem) {
        wrong.push(`${what}: got ${r.status} ${r.text.slice(0, 120)}`);
      }
    };
    for (const [routes, right, other] of [
      [admin, ADMIN_TOKEN, CLUSTER_TOKEN],
      [internal, CLUSTER_TOKEN, ADMIN_TOKEN],
    ] as const) {
      for (const [method, path, body] of routes) {
        for (const [name, headers, want] of variants(right, other)) {
          const q =
            name === 'token in the query string' ? `?token=${right}&access_token=${right}` : '';
          const r = await call(proxy.url, method, `${path}${q}`, {
            ...(body !== undefined ? { json: body } : {}),
            headers,
          });
          check(`${method} ${path} [${name}]`, r, want);
        }
        // The token is checked before the body is even parsed.
        if (method !== 'GET') {
          const r = await fetch(`${proxy.url}${path}`, {
            method,
            headers: { 'content-type': 'application/json' },
            body: '{"not json',
          });
          const text = await r.text();
          check(
            `${method} ${path} [no token, malformed body]`,
            { status: r.status, headers: r.headers, text, body: JSON.parse(text) },
            401,
          );
        }
      }
    }

    // Nothing changed: same ring, the data not flushed.
    const ringAfter = (await call(proxy.url, 'GET', '/api/v1/ring')).body;
    expect(ringAfter.version).toBe(ringBefore.version);
    expect(ringAfter.checksum).toBe(ringBefore.checksum);
    expect((await call(proxy.url, 'GET', '/api/v1/cache/auth-sentinel')).body.value).toBe('kept');

    // The right token: every call succeeds (add, re-weight, remove a spare node; flush; peer calls).
    const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
    const spareId = encodeURIComponent(spare.address);
    const ok: [string, JsonResponse, number][] = [
      [
        'POST /api/v1/ring/nodes',
        await call(proxy.url, 'POST', '/api/v1/ring/nodes', {
          json: { address: spare.address },
          headers: bearer(ADMIN_TOKEN),
        }),
        201,
      ],
      [
        'PATCH /api/v1/ring/nodes/:id',
        await call(proxy.url, 'PATCH', `/api/v1/ring/nodes/${spareId}`, {
          json: { weight: 2 },
          headers: bearer(ADMIN_TOKEN),
        }),
        200,
      ],
      [
        'DELETE /api/v1/ring/nodes/:id',
        await call(proxy.url, 'DELETE', `/api/v1/ring/nodes/${spareId}`, {
          headers: bearer(ADMIN_TOKEN),
        }),
        200,
      ],
      [
        'DELETE /api/v1/cache/',
        await call(proxy.url, 'DELETE', '/api/v1/cache/', {
          headers: { authorization: `bearer ${ADMIN_TOKEN}` },
        }),
        200,
      ],
      [
        'GET /internal/v1/membership',
        await call(proxy.url, 'GET', '/internal/v1/membership', { headers: bearer(CLUSTER_TOKEN) }),
        200,
      ],
      [
        'POST /internal/v1/membership/digest',
        await call(proxy.url, 'POST', '/internal/v1/membership/digest', {
          json: digestBody,
          headers: bearer(CLUSTER_TOKEN),
        }),
        200,
      ],
      [
        'POST /internal/v1/membership/sync',
        await call(proxy.url, 'POST', '/internal/v1/membership/sync', {
          json: {
            ...syncBody,
            doc: (
              await call(proxy.url, 'GET', '/internal/v1/membership', {
                headers: bearer(CLUSTER_TOKEN),
              })
            ).body.doc,
          },
          headers: bearer(CLUSTER_TOKEN),
        }),
        200,
      ],
    ];
    for (const [what, r, want] of ok) {
      rows.push(`${what} [right token] → ${r.status}`);
      if (r.status !== want)
        wrong.push(`${what} [right token]: got ${r.status} ${r.text.slice(0, 200)}`);
    }
    expect((await call(proxy.url, 'GET', '/api/v1/cache/auth-sentinel')).status).toBe(404);

    // Let the peer loop fail three rounds against the dead peer (counted), then read every log line.
    const peerFailures = async () => {
      const text = await (await fetch(`${proxy.url}/metrics`)).text();
      return text
        .split('\n')
        .filter((l) => l.startsWith('dcache_peer_sync_failures_total{'))
        .reduce((a, l) => a + Number(l.split(' ').pop()), 0);
    };
    await waitFor(async () => (await peerFailures()) >= 3, {
      timeout: 15_000,
      message: 'three failed rounds against the dead peer',
    });
    const out = proxy.proc.output();
    const leaks = [ADMIN_TOKEN, CLUSTER_TOKEN].filter((t) => out.includes(t));
    report('auth', {
      requests: rows.length,
      wrong: wrong.length,
      log_lines: out.split('\n').length,
      debug_lines: out.split('\n').filter((l) => l.includes('"level":20')).length,
      log_bytes: out.length,
      tokens_in_logs: leaks.length,
    });
    expect(wrong).toEqual([]);
    // Debug logging really was on (the start-up line shows the redacted config).
    expect(out).toMatch(/"logger":\{"level":"debug"/);
    expect(leaks).toEqual([]);
  });
});

describe('Redis with requirepass', () => {
  const password = 'redis-pw-5b7d9f1a3c';
  let redis: RedisCluster;

  beforeAll(async () => {
    redis = await startRedisCluster(3, { password });
  });

  afterAll(async () => {
    await cleanupAll();
  });

  it('the proxy authenticates with DC_CACHE_PASSWORD and serves', async () => {
    let proxy: ProxyProcess | undefined;
    try {
      proxy = await startProxy({
        DC_CACHE_ADDRESSES: redis.addressList,
        DC_CACHE_PASSWORD: password,
        DC_LOGGER_LEVEL: 'debug',
      });
      const health = await call(proxy.url, 'GET', '/health');
      expect(health.body.status).toBe('ok');
      for (let i = 0; i < 30; i++) {
        expect(
          (await call(proxy.url, 'PUT', `/api/v1/cache/pw:${i}`, { json: { value: i } })).status,
        ).toBe(200);
      }
      const got = await call(proxy.url, 'POST', '/api/v1/cache/batch/get', {
        json: { keys: Array.from({ length: 30 }, (_, i) => `pw:${i}`) },
      });
      expect(Object.keys(got.body.items)).toHaveLength(30);
      expect(proxy.proc.output()).not.toContain(password);
    } finally {
      await proxy?.proc.stop();
    }
  });

  it.for([
    ['a wrong password', 'not-the-password'],
    ['no password', ''],
  ])('%s is a clear start-up error: exit non-zero naming DC_CACHE_PASSWORD', async ([, pw]) => {
    const t0 = performance.now();
    const p = await startProcess(process.execPath, [PROXY_MAIN], {
      env: {
        DC_CONFIG: '',
        DC_SERVER_HOST: '127.0.0.1',
        DC_SERVER_PORT: String(await freePort()),
        DC_CACHE_ADDRESSES: redis.addressList,
        DC_CACHE_PASSWORD: pw,
        DC_LOGGER_LEVEL: 'info',
      },
    });
    const timer = setTimeout(() => p.signal('SIGKILL'), 20_000);
    const code = await p.exited;
    clearTimeout(timer);
    const ms = Math.round(performance.now() - t0);
    const stderr = p.stderr();
    report('redis-auth', {
      case: pw ? 'wrong password' : 'no password',
      exit_code: code,
      exit_after_ms: ms,
      stderr: stderr.trim().split('\n').slice(-1)[0],
    });
    expect(code).not.toBe(0);
    expect(code).not.toBe('SIGKILL');
    expect(stderr).toContain('DC_CACHE_PASSWORD');
    if (pw) expect(p.output()).not.toContain(pw);
  });
});
