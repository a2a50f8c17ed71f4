import { connect, type Socket } from 'node:net';
import { cleanupAll, type RedisCluster, startRedisCluster, waitFor } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call,
  errorBodyProblem,
  type ProxyProcess,
  parseResponses,
  pct,
  rawExchange,
  report,
  startProxy,
} from './harness.js';

const READ_TIMEOUT_MS = 2_000;
const IDLE_TIMEOUT_MS = 3_000;
// Node checks request deadlines on a timer, not per byte; plus scheduling on 2 busy cores.
const SLACK_MS = 3_000;

/** A socket we keep open, with when the server closed it (ms since `t0`), and what it sent. */
interface Held {
  sock: Socket;
  t0: number;
  closedAfter?: number;
  received: string;
}

function hold(port: number): Promise<Held> {
  return new Promise((resolve, reject) => {
    const sock = connect({ port, host: '127.0.0.1' });
    const h: Held = { sock, t0: performance.now(), received: '' };
    sock.on('data', (d: Buffer) => {
      h.received += d.toString('latin1');
    });
    sock.on('close', () => {
      h.closedAfter ??= performance.now() - h.t0;
    });
    sock.on('error', () => {});
    sock.once('connect', () => resolve(h));
    sock.once('error', reject);
  });
}

/** Write `text` one byte every `everyMs` until the socket closes or `maxMs` passes (bounded). */
async function dribble(h: Held, text: string, everyMs: number, maxMs: number): Promise<number> {
  let sent = 0;
  const end = performance.now() + maxMs;
  while (h.closedAfter === undefined && performance.now() < end) {
    if (!h.sock.writable) break;
    h.sock.write(text[sent % text.length] ?? 'x');
    sent++;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return sent;
}

/** Latencies (ms) of `n` sequential GETs by a well-behaved keep-alive client. */
async function normalClient(url: string, n: number, keys: string[]): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await fetch(`${url}/api/v1/cache/${keys[i % keys.length]}`);
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`normal client got ${r.status}`);
    ms.push(performance.now() - t0);
  }
  return ms;
}

describe('slow and abusive clients', () => {
  let redis: RedisCluster;
  let proxy: ProxyProcess;
  const keys = Array.from({ length: 50 }, (_, i) => `abuse:${i}`);

  beforeAll(async () => {
    redis = await startRedisCluster(3);
    proxy = await startProxy({
      DC_CACHE_ADDRESSES: redis.addressList,
      DC_SERVER_READ_TIMEOUT: `${READ_TIMEOUT_MS}ms`,
      DC_SERVER_IDLE_TIMEOUT: `${IDLE_TIMEOUT_MS}ms`,
    });
    for (const k of keys) {
      expect(
        (await call(proxy.url, 'PUT', `/api/v1/cache/${k}`, { json: { value: k } })).status,
      ).toBe(200);
    }
  });

  afterAll(async () => {
    await proxy?.proc.stop();
    await cleanupAll();
  });

  it('slowloris headers and slow bodies are cut off by DC_SERVER_READ_TIMEOUT', async () => {
    const n = 5;
    const headers = await Promise.all(Array.from({ length: n }, () => hold(proxy.port)));
    const bodies = await Promise.all(Array.from({ length: n }, () => hold(proxy.port)));
    // Headers: a request line, then one header byte a second, never the blank line.
    const h = headers.map(async (s) => {
      s.sock.write('GET /api/v1/cache/abuse:1 HTTP/1.1\r\nHost: x\r\n');
      return dribble(s, 'X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 1_000, 60_000);
    });
    // Bodies: complete headers announcing 100 bytes, then one byte a second.
    const b = bodies.map(async (s) => {
      s.sock.write(
        'PUT /api/v1/cache/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n',
      );
      return dribble(s, '{"value":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 1_000, 60_000);
    });
    const sentH = await Promise.all(h);
    const sentB = await Promise.all(b);
    const closedH = headers.map((s) => Math.round(s.closedAfter ?? Number.NaN));
    const closedB = bodies.map((s) => Math.round(s.closedAfter ?? Number.NaN));
    const answers = [...headers, ...bodies].map((s) => {
      const { responses } = parseResponses(Buffer.from(s.received, 'latin1'));
      return responses[0];
    });
    report('slowloris', {
      read_timeout_ms: READ_TIMEOUT_MS,
      headers_closed_after_ms: closedH,
      bodies_closed_after_ms: closedB,
      bytes_dribbled_headers: sentH,
      bytes_dribbled_bodies: sentB,
      answers: answers.map((a) =>
        a ? `${a.status} ${/"code":"(\w+)"/.exec(a.body)?.[1]}` : 'none',
      ),
    });
    for (const ms of [...closedH, ...closedB]) {
      expect(ms).toBeGreaterThanOrEqual(READ_TIMEOUT_MS - 100);
      expect(ms).toBeLessThanOrEqual(READ_TIMEOUT_MS + SLACK_MS);
    }
    // Each gets a catalogue 400 before the close (not a silent reset).
    for (const a of answers) {
      expect(a?.status).toBe(400);
      expect(errorBodyProblem(a?.status ?? 0, a?.body ?? '')).toBeUndefined();
    }
  });

  it('500 idle keep-alive connections are closed by DC_SERVER_IDLE_TIMEOUT and barely move a normal client’s p99', async () => {
    const n = 500;
    const warm = await normalClient(proxy.url, 200, keys);
    const baseline = await normalClient(proxy.url, 600, keys);

    const idle: Held[] = [];
    for (let i = 0; i < n; i += 50) {
      idle.push(...(await Promise.all(Array.from({ length: 50 }, () => hold(proxy.port)))));
    }
    // Each makes one keep-alive request, reads the answer, then says nothing more.
    for (const s of idle) s.sock.write('GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => idle.every((s) => s.received.includes('\r\n\r\n')), {
      timeout: 20_000,
      message: 'every idle connection answered once',
    });
    const answeredAt = performance.now();
    // Slowloris at the same time, to add to the abuse.
    const slow = await Promise.all(Array.from({ length: 20 }, () => hold(proxy.port)));
    const dribbles = slow.map((s) => {
      s.sock.write('GET /health HTTP/1.1\r\nHost: x\r\n');
      return dribble(s, 'X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 500, 30_000);
    });
    const during = await normalClient(proxy.url, 600, keys);
    await waitFor(() => idle.every((s) => s.closedAfter !== undefined), {
      timeout: IDLE_TIMEOUT_MS + 30_000,
      interval: 100,
      message: 'the idle connections to be closed',
    });
    const idleClosed = idle.map((s) => s.t0 + (s.closedAfter ?? 0) - answeredAt);
    await Promise.all(dribbles);
    const p99Base = pct(baseline, 99);
    const p99During = pct(during, 99);
    report('idle-keepalive', {
      idle_connections: n,
      idle_timeout_ms: IDLE_TIMEOUT_MS,
      closed_after_answer_ms: {
        min: Math.round(Math.min(...idleClosed)),
        max: Math.round(Math.max(...idleClosed)),
      },
      normal_p50_ms: {
        baseline: +pct(baseline, 50).toFixed(2),
        during: +pct(during, 50).toFixed(2),
      },
      normal_p99_ms: { baseline: +p99Base.toFixed(2), during: +p99During.toFixed(2) },
      p99_ratio: +(p99During / p99Base).toFixed(2),
      warm_requests: warm.length,
    });
    expect(Math.max(...idleClosed)).toBeLessThanOrEqual(IDLE_TIMEOUT_MS + SLACK_MS);
    // Documented bound (docs/reliability.md): p99 at most 5× the baseline or +200 ms, whichever is
    // larger. 600 requests make p99 the 6th slowest: a scheduler stall of a busy 2-core machine
    // lands there, while the fault it guards against (idle sockets starving the loop) costs seconds.
    expect(p99During).toBeLessThanOrEqual(Math.max(5 * p99Base, p99Base + 200));
  });

  it('pipelined HTTP/1.1 requests on one socket are answered in order', async () => {
    // 50 stored keys with distinct values, read in a scrambled order, with misses and HEADs mixed in.
    let wire = '';
    const expected: { status: number; key: string; head: boolean }[] = [];
    for (let i = 0; i < 150; i++) {
      const key = i % 7 === 3 ? `pipe:missing:${i}` : keys[(i * 17) % keys.length]!;
      const head = i % 5 === 4;
      wire += `${head ? 'HEAD' : 'GET'} /api/v1/cache/${key} HTTP/1.1\r\nHost: x\r\n\r\n`;
      expected.push({ status: key.startsWith('pipe:missing') ? 404 : 200, key, head });
    }
    wire += 'GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    expected.push({ status: 200, key: '', head: false });
    const res = await rawExchange(proxy.port, wire, {
      expect: expected.length,
      noBody: expected.map((e) => e.head),
      timeoutMs: 20_000,
    });
    expect(res.responses).toHaveLength(expected.length);
    res.responses.forEach((r, i) => {
      const e = expected[i]!;
      expect(r.status, `response ${i}`).toBe(e.status);
      if (e.head || !e.key) return;
      const body = JSON.parse(r.body);
      if (e.status === 200) expect(body, `response ${i}`).toEqual({ key: e.key, value: e.key });
      else expect(body.error.code).toBe('KEY_NOT_FOUND');
    });
    report('pipelining', { requests: expected.length, answered_in_order: res.responses.length });
  });

  it('a GET pipelined after a PUT of the same key reads what the PUT wrote (RFC 9112 §9.3.2)', async () => {
    let wire = '';
    const n = 40;
    for (let i = 0; i < n; i++) {
      const body = JSON.stringify({ value: { i } });
      wire += `PUT /api/v1/cache/pipe:${i} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      wire += `GET /api/v1/cache/pipe:${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
      wire += `DELETE /api/v1/cache/pipe:${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
      wire += `GET /api/v1/cache/pipe:${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
    }
    const res = await rawExchange(proxy.port, wire, { expect: 4 * n, timeoutMs: 20_000 });
    expect(res.responses).toHaveLength(4 * n);
    const stale: string[] = [];
    for (let i = 0; i < n; i++) {
      const [put, get, del, gone] = res.responses.slice(4 * i, 4 * i + 4);
      expect(put?.status).toBe(200);
      if (get?.status !== 200 || JSON.parse(get.body).value?.i !== i)
        stale.push(`get ${i}: ${get?.status}`);
      if (del?.status !== 200) stale.push(`del ${i}: ${del?.status}`);
      if (gone?.status !== 404) stale.push(`get after del ${i}: ${gone?.status}`);
    }
    expect(stale).toEqual([]);
  });
});

describe('rate limiting (DC_RATE_LIMIT_MAX=20, DC_RATE_LIMIT_WINDOW=1s)', () => {
  let proxy: ProxyProcess;

  beforeAll(async () => {
    const redis = await startRedisCluster(1);
    proxy = await startProxy({
      DC_CACHE_ADDRESSES: redis.addressList,
      DC_RATE_LIMIT_MAX: '20',
      DC_RATE_LIMIT_WINDOW: '1s',
    });
  });

  afterAll(async () => {
    await proxy?.proc.stop();
    await cleanupAll();
  });

  it('answers 429 RATE_LIMITED with Retry-After past 20 requests a window; /health and /metrics are exempt', async () => {
    // Start right after a window boundary is unknowable; send fast so that 40 fall in ~one window.
    const results = await Promise.all(
      Array.from({ length: 40 }, () => call(proxy.url, 'GET', '/api/v1/cache/rl-missing')),
    );
    const limited = results.filter((r) => r.status === 429);
    const served = results.filter((r) => r.status === 404);
    expect(served.length + limited.length).toBe(40);
    expect(served.length).toBeGreaterThanOrEqual(20);
    expect(served.length).toBeLessThanOrEqual(40 - 10);
    for (const r of limited) {
      expect(r.body.error.code).toBe('RATE_LIMITED');
      expect(errorBodyProblem(r.status, r.text)).toBeUndefined();
      const retry = Number(r.headers.get('retry-after'));
      expect(retry).toBeGreaterThanOrEqual(0);
      expect(retry).toBeLessThanOrEqual(1);
    }
    // While the data path is limited, health and metrics still answer.
    const exempt = await Promise.all([
      ...Array.from({ length: 30 }, () => call(proxy.url, 'GET', '/health')),
      ...Array.from({ length: 30 }, () => call(proxy.url, 'GET', '/health/live')),
      ...Array.from({ length: 30 }, () => call(proxy.url, 'GET', '/metrics')),
    ]);
    expect(exempt.filter((r) => r.status === 429)).toEqual([]);
    // The next window serves again.
    await waitFor(
      async () => (await call(proxy.url, 'GET', '/api/v1/cache/rl-missing')).status === 404,
      { timeout: 5_000, interval: 100, message: 'the next window' },
    );
    const metrics = await call(proxy.url, 'GET', '/metrics');
    const counted = /^dcache_rate_limited_total(?:\{[^}]*\})? (\d+)/m.exec(metrics.text);
    report('rate-limit', {
      sent: 40,
      served: served.length,
      limited: limited.length,
      retry_after: [...new Set(limited.map((r) => r.headers.get('retry-after')))],
      exempt_429: 0,
      metric_rate_limited_total: counted ? Number(counted[1]) : null,
    });
  });
});
