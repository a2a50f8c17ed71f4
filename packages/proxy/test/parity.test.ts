import { cleanupAll, type RedisCluster, startRedisCluster } from '@dcache/test-utils';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { startServer } from '../src/server.js';
import { type Res, rawRequest, startProxy, type TestProxy } from './helpers.js';

// The node:http fast path must answer exactly as Fastify does. The same requests go to a proxy
// with it (the default) and one without (DC_SERVER_FAST_PATH=false) over the same Redis nodes,
// which are flushed in between; status, body and headers must match.

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

/** The parts of a response that must match: status, body, headers but date and request id. */
function shape(r: Res, step: Step): unknown {
  const headers: Record<string, string> = {};
  r.headers.forEach((v, k) => {
    if (k === 'date') return;
    headers[k] = k === 'x-request-id' && !step.headers?.['x-request-id'] ? '(generated)' : v;
  });
  return { status: r.status, text: r.text, headers };
}

async function run(p: TestProxy): Promise<unknown[]> {
  await Promise.all(cluster.nodes.map((n) => n.flush()));
  const out: unknown[] = [];
  for (const step of STEPS.map((s) => s[0])) {
    const init = {
      ...(step.body !== undefined ? { body: step.body } : {}),
      ...(step.headers ? { headers: step.headers } : {}),
    };
    out.push(shape(await rawRequest(p.url, step.method, step.path, init), step));
  }
  return out;
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
    for (let i = 0; i < STEPS.length; i++) {
      const s = STEPS[i]?.[0] as Step;
      expect(a[i], `${s.method} ${s.path}`).toEqual(b[i]);
    }
    // The comparison means something only if both sides answered with what the API promises.
    const statuses = (a as { status: number }[]).map((r) => r.status);
    expect(statuses.slice(0, 7)).toEqual([200, 200, 200, 200, 404, 404, 404]);
    expect(new Set(statuses).has(500)).toBe(false);
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
