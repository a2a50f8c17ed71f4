import { connect } from 'node:net';
import { Ring } from '@dcache/ring';
import { cleanupAll, type RedisCluster, startRedisCluster, waitFor } from '@dcache/test-utils';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { startServer } from '../src/server.js';
import { type Res, rawRequest, startProxy, type TestProxy } from './helpers.js';

// The node:http fast path must answer exactly as Fastify does. The same requests go to a proxy
// with it (the default) and one without (DC_SERVER_FAST_PATH=false) over the same Redis nodes,
// which are flushed in between; status, body and headers must match: every 4xx of the
// single-key routes, the 429s, the 5xx of a stopped and of a killed node, a body that never
// arrives, and an answer during shutdown.

let cluster: RedisCluster;
let fast: TestProxy;
let slow: TestProxy;

const LIMITS = { DC_LIMITS_MAX_VALUE_BYTES: '4kb', DC_LIMITS_MAX_KEY_BYTES: '64' };

beforeAll(async () => {
  cluster = await startRedisCluster(2);
  fast = await startProxy(cluster.addresses, LIMITS);
  slow = await startProxy(cluster.addresses, { ...LIMITS, DC_SERVER_FAST_PATH: 'false' });
});

afterAll(async () => {
  await fast?.close();
  await slow?.close();
  await cleanupAll();
});

type Step = { method: string; path: string; body?: string; headers?: Record<string, string> };

/** A value nested `n` arrays deep. */
function deep(n: number): unknown {
  let v: unknown = 0;
  for (let i = 0; i < n; i++) v = [v];
  return v;
}
const json = (body: unknown, headers: Record<string, string> = {}) => ({
  body: JSON.stringify(body),
  headers: { 'content-type': 'application/json', ...headers },
});

/** Requests the fast path serves itself (`true`) or leaves to Fastify (`false`). */
const STEPS: [Step, boolean][] = [
  [
    { method: 'PUT', path: '/api/v1/cache/user:1', ...json({ value: { a: [1, 'x'] }, ttl: '1h' }) },
    true,
  ],
  [{ method: 'GET', path: '/api/v1/cache/user:1' }, true],
  [{ method: 'HEAD', path: '/api/v1/cache/user:1' }, true],
  [{ method: 'DELETE', path: '/api/v1/cache/user:1' }, true],
  [{ method: 'GET', path: '/api/v1/cache/user:1' }, true],
  [{ method: 'HEAD', path: '/api/v1/cache/user:1' }, true],
  [{ method: 'DELETE', path: '/api/v1/cache/user:1' }, true],
  [
    {
      method: 'PUT',
      path: '/api/v1/cache/k2',
      ...json({ value: 'v', ttl: 30 }, { 'content-type': 'application/json; charset=utf-8' }),
    },
    true,
  ],
  [{ method: 'GET', path: '/api/v1/cache/k2', headers: { 'x-request-id': 'mine-1' } }, true],
  [{ method: 'PUT', path: '/api/v1/cache/k3', ...json({ value: null }) }, true],
  [{ method: 'GET', path: '/api/v1/cache/k3' }, true],
  // Bodies the route refuses.
  [{ method: 'PUT', path: '/api/v1/cache/bad', body: '{bad', headers: json(0).headers }, true],
  [
    {
      method: 'PUT',
      path: '/api/v1/cache/bad',
      body: '{"__proto__":{"x":1}}',
      headers: json(0).headers,
    },
    true,
  ],
  [{ method: 'PUT', path: '/api/v1/cache/bad', ...json([1]) }, true],
  [{ method: 'PUT', path: '/api/v1/cache/bad', ...json(null) }, true],
  [{ method: 'PUT', path: '/api/v1/cache/bad', ...json({ ttl: '1h' }) }, true],
  [{ method: 'PUT', path: '/api/v1/cache/bad', ...json({ value: 1, ttl: 'soon' }) }, true],
  [{ method: 'PUT', path: '/api/v1/cache/bad', ...json({ value: 'x'.repeat(5_000) }) }, true],
  [{ method: 'PUT', path: '/api/v1/cache/bad', ...json({ value: deep(80) }) }, true],
  [{ method: 'PUT', path: '/api/v1/cache/bad', ...json({ value: 1, ttl: -5 }) }, true],
  // Keys: percent-encoded, too long, malformed.
  [{ method: 'PUT', path: '/api/v1/cache/caf%C3%A9%20%2F%3F', ...json({ value: 1 }) }, true],
  [{ method: 'GET', path: '/api/v1/cache/caf%C3%A9%20%2F%3F' }, true],
  [{ method: 'GET', path: `/api/v1/cache/${'k'.repeat(65)}` }, true],
  [{ method: 'GET', path: `/api/v1/cache/${'%C3%A9'.repeat(22)}` }, true],
  [{ method: 'GET', path: `/api/v1/cache/${'%C3%A9'.repeat(33)}` }, false],
  [{ method: 'GET', path: '/api/v1/cache/%E0%A4%A' }, false],
  [{ method: 'GET', path: '/api/v1/cache/%ED%A0%80' }, false],
  // What Fastify keeps: other routes of the same shape, query strings, odd bodies and types.
  [{ method: 'GET', path: '/api/v1/cache/batch' }, false],
  [{ method: 'GET', path: '/api/v1/cache/%62atch' }, false],
  [{ method: 'POST', path: '/api/v1/cache/batch/get', ...json({ keys: ['k2', 'zz'] }) }, false],
  [{ method: 'GET', path: '/api/v1/cache/k2?x=1' }, false],
  [{ method: 'GET', path: '/api/v1/cache/' }, false],
  [{ method: 'GET', path: '/api/v1/cache/a/b' }, false],
  [{ method: 'GET', path: '/api/v1/cache/a#b' }, false],
  [{ method: 'DELETE', path: `/api/v1/cache/${'k'.repeat(65)}` }, true],
  [{ method: 'POST', path: '/api/v1/cache/k2', ...json({ value: 1 }) }, false],
  [
    {
      method: 'PUT',
      path: '/api/v1/cache/k4',
      body: '{"value":1}',
      headers: { 'content-type': 'text/plain' },
    },
    false,
  ],
  [{ method: 'PUT', path: '/api/v1/cache/k4', body: '', headers: json(0).headers }, false],
  [{ method: 'PUT', path: '/api/v1/cache/k4', ...json({ value: 'y'.repeat(80_000) }) }, false],
  [{ method: 'GET', path: '/api/v1/cache/k2', body: '{}', headers: json(0).headers }, false],
];

// Seconds left in a rate-limit window: the two proxies' windows started a moment apart.
const CLOCK_HEADERS = new Set(['x-ratelimit-reset', 'retry-after']);

/** The parts of a response that must match: status, body, headers but date and request id. */
function shape(r: Res, step: Step): { status: number; text: string; headers: object } {
  const headers: Record<string, string> = {};
  r.headers.forEach((v, k) => {
    if (k === 'date') return;
    headers[k] =
      k === 'x-request-id' && !step.headers?.['x-request-id']
        ? '(generated)'
        : CLOCK_HEADERS.has(k)
          ? '(seconds)'
          : v;
  });
  return { status: r.status, text: r.text, headers };
}

/** The catalogue code of an error answer, or its status. */
function codeOfShape(r: { status: number; text: string }): string {
  try {
    return `${r.status} ${JSON.parse(r.text).error.code}`;
  } catch {
    return String(r.status);
  }
}

async function run(
  p: TestProxy,
  steps: Step[] = STEPS.map((s) => s[0]),
  nodes: RedisCluster | undefined = cluster,
): Promise<ReturnType<typeof shape>[]> {
  if (nodes) await Promise.all(nodes.nodes.map((n) => n.flush()));
  const out: ReturnType<typeof shape>[] = [];
  for (const step of steps) out.push(await send(p, step));
  return out;
}

async function send(p: TestProxy, step: Step): Promise<ReturnType<typeof shape>> {
  const init = {
    ...(step.body !== undefined ? { body: step.body } : {}),
    ...(step.headers ? { headers: step.headers } : {}),
  };
  return shape(await rawRequest(p.url, step.method, step.path, init), step);
}

/** Both proxies answered alike, step by step. */
function expectSame(a: unknown[], b: unknown[], steps: Step[]): void {
  expect(a).toHaveLength(steps.length);
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i] as Step;
    expect(a[i], `${s.method} ${s.path}`).toEqual(b[i]);
  }
}

async function metric(p: TestProxy, name: string): Promise<number> {
  const text = (await p.req('GET', '/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

describe('the node:http fast path', () => {
  it('answers every request exactly as Fastify does', async () => {
    const a = await run(fast);
    const b = await run(slow);
    expectSame(
      a,
      b,
      STEPS.map((s) => s[0]),
    );
    // The comparison means something only if both sides answered with what the API promises.
    const statuses = a.map((r) => r.status);
    expect(statuses.slice(0, 7)).toEqual([200, 200, 200, 200, 404, 404, 404]);
    expect(new Set(statuses).has(500)).toBe(false);
    // Every 4xx the single-key routes give without a node failing or a limit being hit.
    const codes = new Set(a.map(codeOfShape));
    for (const c of [
      '400 INVALID_JSON',
      '400 INVALID_KEY',
      '400 INVALID_TTL',
      '400 MISSING_VALUE',
      '400 INVALID_BODY',
      '400 VALUE_TOO_DEEP',
      '404 KEY_NOT_FOUND',
      '404 NOT_FOUND',
      '413 PAYLOAD_TOO_LARGE',
      '415 UNSUPPORTED_MEDIA_TYPE',
    ])
      expect(codes, c).toContain(c);
    // HEAD answers carry no body and, as Fastify sends them, no Content-Length.
    const heads = a.filter((_, i) => STEPS[i]?.[0].method === 'HEAD');
    expect(heads.length).toBeGreaterThan(0);
    for (const h of heads) expect(h.headers).not.toHaveProperty('content-length');
  });

  it('serves the plain requests itself and leaves the rest to Fastify', async () => {
    const before = await metric(fast, 'dcache_http_fast_path_requests_total');
    for (const [step, taken] of STEPS) {
      const init = {
        ...(step.body !== undefined ? { body: step.body } : {}),
        ...(step.headers ? { headers: step.headers } : {}),
      };
      const n0 = await metric(fast, 'dcache_http_fast_path_requests_total');
      await rawRequest(fast.url, step.method, step.path, init);
      const n1 = await metric(fast, 'dcache_http_fast_path_requests_total');
      expect(n1 - n0, `${step.method} ${step.path}`).toBe(taken ? 1 : 0);
    }
    expect(await metric(fast, 'dcache_http_fast_path_requests_total')).toBeGreaterThan(before);
    expect(await metric(slow, 'dcache_http_fast_path_requests_total')).toBe(0);
  });

  it('keeps the answers of pipelined requests in order and a GET after a PUT sees the PUT', async () => {
    const { connect } = await import('node:net');
    const u = new URL(fast.url);
    const body = JSON.stringify({ value: 'piped' });
    const wire =
      `PUT /api/v1/cache/pipe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
      'GET /api/v1/cache/pipe HTTP/1.1\r\nHost: x\r\n\r\n' +
      'GET /api/v1/cache/pipe?via=fastify HTTP/1.1\r\nHost: x\r\n\r\n' +
      'GET /api/v1/cache/pipe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const text = await new Promise<string>((resolve, reject) => {
      const sock = connect(Number(u.port), u.hostname, () => sock.write(wire));
      let got = '';
      sock.on('data', (d) => {
        got += d.toString('utf8');
      });
      sock.on('close', () => resolve(got));
      sock.on('error', reject);
      sock.setTimeout(20_000, () => sock.destroy(new Error('timeout')));
    });
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
    expect(statuses).toEqual(['200', '200', '200', '200']);
    expect(text.match(/"value":"piped"/g)).toHaveLength(3);
    expect(text.indexOf('"ttl_ms"')).toBeLessThan(text.indexOf('"value":"piped"'));
  });

  it('sends the ring headers of the snapshot in force after a ring change', async () => {
    // The fixed header block is remade per snapshot: a stale one would hide a ring change.
    const extra = await startRedisCluster(1);
    const p = await startProxy([cluster.addresses[0] as string]);
    try {
      const put = await p.req('PUT', '/api/v1/cache/ring-hdr', { json: { value: 1 } });
      expect(put.status).toBe(200);
      const ringOf = async () => (await p.req('GET', '/api/v1/ring')).body;
      const before = await ringOf();
      const r1 = await rawRequest(p.url, 'GET', '/api/v1/cache/ring-hdr', {});
      expect(r1.headers.get('x-ring-version')).toBe(String(before.version));
      expect(r1.headers.get('x-ring-checksum')).toBe(before.checksum);
      const add = await p.req('POST', '/api/v1/ring/nodes', {
        json: { address: extra.addresses[0] },
      });
      expect(add.status).toBe(201);
      const after = await ringOf();
      expect(after.version).toBeGreaterThan(before.version);
      const n0 = await metric(p, 'dcache_http_fast_path_requests_total');
      const r2 = await rawRequest(p.url, 'GET', '/api/v1/cache/ring-hdr', {});
      expect(await metric(p, 'dcache_http_fast_path_requests_total')).toBe(n0 + 1);
      expect(r2.headers.get('x-ring-version')).toBe(String(after.version));
      expect(r2.headers.get('x-ring-checksum')).toBe(after.checksum);
      expect(r2.headers.get('x-content-type-options')).toBe('nosniff');
    } finally {
      await p.close();
      await extra.stopAll();
    }
  });

  it('follows per-response headers that change, whether or not their object does', async () => {
    // startServer merges the cluster's ring headers with these into a new object per response.
    let n = 0;
    const config = loadConfig({
      env: {
        DC_SERVER_HOST: '127.0.0.1',
        DC_SERVER_PORT: '0',
        DC_CACHE_ADDRESSES: cluster.addresses.join(','),
        DC_LOGGER_LEVEL: 'silent',
      },
    });
    const s = await startServer(config, {
      log: pino({ level: 'silent' }),
      responseHeaders: () => ({ 'x-test-round': String(Math.floor(n / 2)) }),
    });
    try {
      const seen: (string | null)[] = [];
      for (; n < 4; n++) {
        const r = await rawRequest(s.url, 'GET', '/api/v1/cache/absent-key', {});
        expect(r.status).toBe(404);
        expect(r.headers.get('x-ring-version')).not.toBeNull();
        seen.push(r.headers.get('x-test-round'));
      }
      expect(seen).toEqual(['0', '0', '1', '1']);
    } finally {
      await s.close();
    }
  });
});

/** A proxy with the fast path (the default) and one without, over `addresses`, with `env`. */
async function pair(
  addresses: readonly string[],
  env: Record<string, string>,
): Promise<[TestProxy, TestProxy]> {
  const f = await startProxy(addresses, env);
  const s = await startProxy(addresses, { ...env, DC_SERVER_FAST_PATH: 'false' });
  return [f, s];
}

/** A key the ring over `addresses` places on `node`. */
function keyOn(addresses: readonly string[], node: string, prefix: string): string {
  const ring = new Ring(addresses.map((id) => ({ id })));
  for (let i = 0; i < 100_000; i++)
    if (ring.owner(`${prefix}${i}`) === node) return `${prefix}${i}`;
  throw new Error(`no key on ${node}`);
}

const inflightOf = (p: TestProxy) => metric(p, 'dcache_http_inflight_requests');
const servedFast = (p: TestProxy) => metric(p, 'dcache_http_fast_path_requests_total');

describe('both front ends when limits, nodes and shutdown get in the way', () => {
  let nodes: RedisCluster;
  beforeAll(async () => {
    nodes = await startRedisCluster(2);
  });
  afterAll(async () => {
    for (const n of nodes?.nodes ?? []) n.cont();
    await nodes?.stopAll();
  });

  it('429 RATE_LIMITED: same answers and X-RateLimit-* headers', async () => {
    const [f, s] = await pair(nodes.addresses, {
      DC_RATE_LIMIT_MAX: '3',
      DC_RATE_LIMIT_WINDOW: '1m',
    });
    try {
      const steps: Step[] = [
        { method: 'PUT', path: '/api/v1/cache/rl', ...json({ value: 1 }) },
        { method: 'GET', path: '/api/v1/cache/rl' },
        { method: 'HEAD', path: '/api/v1/cache/rl' },
        { method: 'GET', path: '/api/v1/cache/rl' },
        { method: 'DELETE', path: '/api/v1/cache/rl' },
      ];
      const before = await servedFast(f);
      const a = await run(f, steps, nodes);
      expect(await servedFast(f)).toBe(before + steps.length);
      const b = await run(s, steps, nodes);
      expectSame(a, b, steps);
      expect(a.map(codeOfShape)).toEqual([
        '200',
        '200',
        '200',
        '429 RATE_LIMITED',
        '429 RATE_LIMITED',
      ]);
      expect(a[0]?.headers).toMatchObject({
        'x-ratelimit-limit': '3',
        'x-ratelimit-remaining': '2',
      });
      expect(a[3]?.headers).toMatchObject({
        'x-ratelimit-remaining': '0',
        'retry-after': '(seconds)',
      });
    } finally {
      await f.close();
      await s.close();
    }
  });

  it('429 AUTH_THROTTLED: a read that carries a token from a throttled client', async () => {
    const [f, s] = await pair(nodes.addresses, {
      DC_RATE_LIMIT_AUTH_FAILURES: '2',
      DC_ADMIN_TOKEN: 'adm-parity-0123456789abcdef0123456789',
    });
    try {
      // Two wrong admin tokens, then a read that carries a token: throttled on both paths.
      const auth: Step[] = [
        { method: 'DELETE', path: '/api/v1/cache/', headers: { authorization: 'Bearer wrong-1' } },
        { method: 'DELETE', path: '/api/v1/cache/', headers: { authorization: 'Bearer wrong-2' } },
        { method: 'GET', path: '/api/v1/cache/k', headers: { authorization: 'Bearer wrong-3' } },
      ];
      const c = await run(f, auth, undefined);
      const d = await run(s, auth, undefined);
      expectSame(c, d, auth);
      expect(c.map(codeOfShape)).toEqual(['403 FORBIDDEN', '403 FORBIDDEN', '429 AUTH_THROTTLED']);
    } finally {
      await f.close();
      await s.close();
    }
  });

  it('5xx: a stopped node (504 NODE_TIMEOUT) and a killed one (503 NODE_UNAVAILABLE)', async () => {
    const down = nodes.nodes[1];
    if (!down) throw new Error('fixture has 2 nodes');
    const key = keyOn(nodes.addresses, down.address, 'down-');
    const [f, s] = await pair(nodes.addresses, {
      DC_CACHE_COMMAND_TIMEOUT: '400ms',
      DC_HEALTH_FAILURE_THRESHOLD: '1000',
    });
    const steps: Step[] = [
      { method: 'PUT', path: `/api/v1/cache/${key}`, ...json({ value: 1 }) },
      { method: 'GET', path: `/api/v1/cache/${key}` },
      { method: 'HEAD', path: `/api/v1/cache/${key}` },
      { method: 'DELETE', path: `/api/v1/cache/${key}` },
    ];
    try {
      down.stop();
      const a = await run(f, steps, undefined);
      const b = await run(s, steps, undefined);
      down.cont();
      expectSame(a, b, steps);
      expect(a.map((r) => r.status)).toEqual([504, 504, 504, 504]);
      expect(codeOfShape(a[1] as ReturnType<typeof shape>)).toBe('504 NODE_TIMEOUT');
      await down.kill();
      const c = await run(f, steps, undefined);
      const d = await run(s, steps, undefined);
      expectSame(c, d, steps);
      expect(c.map((r) => r.status)).toEqual([503, 503, 503, 503]);
      expect(codeOfShape(c[1] as ReturnType<typeof shape>)).toBe('503 NODE_UNAVAILABLE');
    } finally {
      down.cont();
      await down.restart();
      await f.close();
      await s.close();
    }
  });

  it('a body that never arrives: 400 BAD_REQUEST after the read timeout, then the connection closes', async () => {
    const [f, s] = await pair(nodes.addresses, { DC_SERVER_READ_TIMEOUT: '1s' });
    const slowBody = (p: TestProxy) =>
      new Promise<string>((resolve, reject) => {
        const u = new URL(p.url);
        const sock = connect(Number(u.port), u.hostname, () =>
          sock.write(
            'PUT /api/v1/cache/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{"value":',
          ),
        );
        let got = '';
        sock.on('data', (d) => {
          got += d.toString('utf8');
        });
        sock.on('close', () => resolve(got));
        sock.on('error', reject);
        sock.setTimeout(30_000, () => sock.destroy(new Error('no answer in 30 s')));
      });
    try {
      const before = await servedFast(f);
      const [a, b] = await Promise.all([slowBody(f), slowBody(s)]);
      expect(await servedFast(f)).toBe(before + 1);
      expect(a).toBe(b);
      expect(a).toMatch(/^HTTP\/1\.1 400 /);
      expect(a).toContain('"code":"BAD_REQUEST"');
      expect(a).toContain('the request body was not received within the read timeout');
    } finally {
      await f.close();
      await s.close();
    }
  });

  it('during shutdown: the 503 of a write in flight when it began carries Connection: close', async () => {
    const down = nodes.nodes[1];
    if (!down) throw new Error('fixture has 2 nodes');
    const key = keyOn(nodes.addresses, down.address, 'bye-');
    const answers: ReturnType<typeof shape>[] = [];
    for (const fastPath of ['true', 'false']) {
      const p = await startProxy(nodes.addresses, {
        DC_SERVER_FAST_PATH: fastPath,
        DC_CACHE_COMMAND_TIMEOUT: '30s',
        DC_HEALTH_FAILURE_THRESHOLD: '1000',
        DC_SERVER_SHUTDOWN_TIMEOUT: '30s',
      });
      let closing: Promise<void> | undefined;
      try {
        const fastBefore = await servedFast(p);
        down.stop();
        // A write: a read could fall back to the next owner when its node's connection drops.
        const step: Step = { method: 'PUT', path: `/api/v1/cache/${key}`, ...json({ value: 1 }) };
        const pending = send(p, step);
        await waitFor(async () => (await inflightOf(p)) === 1, {
          timeout: 20_000,
          message: 'the GET to be in flight',
        });
        if (fastPath === 'true') expect(await servedFast(p)).toBe(fastBefore + 1);
        closing = p.close();
        await waitFor(() => p.server.rt.state.shuttingDown, {
          timeout: 5_000,
          message: 'shutdown',
        });
        // The node's connection drops under the request: its 503 is written during the drain.
        // SIGKILL to the stopped process (RedisServer.kill sends SIGCONT first, and the node
        // would answer the SET before it dies).
        process.kill(down.pid as number, 'SIGKILL');
        answers.push(await pending);
      } finally {
        down.cont();
        await closing;
        await down.restart();
      }
    }
    const [a, b] = answers as [ReturnType<typeof shape>, ReturnType<typeof shape>];
    expect(a).toEqual(b);
    expect(codeOfShape(a)).toBe('503 NODE_UNAVAILABLE');
    expect(a.headers).toMatchObject({ connection: 'close' });
  });
});
