import { cleanupAll, startRedis, waitFor } from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DcacheAbortError,
  DcacheClient,
  DcacheClientError,
  DcacheNetworkError,
  DcacheTimeoutError,
  isDcacheClientError,
} from '../src/index.js';
import { type ProxyFixture, startHttpServer, startProxy } from './helpers.js';

/** The rejection of `p` (fails the test when it resolves). */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to reject');
}

afterAll(cleanupAll);

describe('client against a real proxy over 3 redis-servers', () => {
  let px: ProxyFixture;
  let c: DcacheClient;

  beforeAll(async () => {
    px = await startProxy(3);
    c = new DcacheClient({ url: px.url, token: 'admin-secret', timeout: 5_000 });
  });
  afterAll(async () => {
    await c?.close();
    await px?.stop();
  });

  it('stores, reads, tests and deletes JSON values of every kind, with TTLs', async () => {
    const values: unknown[] = [
      'text',
      '',
      0,
      -1.5,
      true,
      false,
      null,
      [1, 'a', null],
      { nested: { list: [1, 2, { deep: 'x' }] }, ünïcode: '✓' },
    ];
    for (const [i, v] of values.entries()) {
      const key = `v:${i}`;
      expect(await c.set(key, v)).toEqual({ key, ttl_ms: 0 });
      expect(await c.get(key)).toEqual(v);
      expect(await c.exists(key)).toBe(true);
    }
    expect(await c.set('ttl:s', 1, { ttl: '90s' })).toEqual({ key: 'ttl:s', ttl_ms: 90_000 });
    expect(await c.set('ttl:n', 1, { ttl: 2.5 })).toEqual({ key: 'ttl:n', ttl_ms: 2_500 });
    expect(await c.del('v:0')).toEqual({ key: 'v:0', deleted: true });
    expect(await c.exists('v:0')).toBe(false);
    expect(await c.tryGet('v:0')).toBeUndefined();
    expect(await c.tryGet('v:1')).toBe('');
  });

  it('percent-encodes keys: slashes, spaces, ?, #, %, UTF-8, and the route names keys/stats/batch', async () => {
    const keys = ['a/b/c', 'with space', 'q?x=1&y', 'hash#frag', '100%', 'ключ:✓', '..', '.'];
    keys.push('keys', 'stats', 'batch');
    for (const k of keys) {
      await c.set(k, { k });
      expect(await c.get(k), k).toEqual({ k });
      expect(await c.exists(k), k).toBe(true);
      expect((await c.owner(k)).key, k).toBe(k);
    }
    for (const k of keys) expect(await c.del(k), k).toEqual({ key: k, deleted: true });
    for (const k of keys) {
      expect(await c.exists(k), k).toBe(false);
      const e = await rejection(c.get(k));
      expect(isDcacheClientError(e, 'KEY_NOT_FOUND'), k).toBe(true);
      expect(isDcacheClientError(await rejection(c.del(k)), 'KEY_NOT_FOUND'), k).toBe(true);
    }
  });

  it('server errors are DcacheClientError with the stable code, status and message', async () => {
    const missing = await rejection(c.get('no-such-key'));
    expect(missing).toBeInstanceOf(DcacheClientError);
    expect(missing).not.toBeInstanceOf(DcacheNetworkError);
    expect(missing).toMatchObject({ code: 'KEY_NOT_FOUND', status: 404 });
    expect((missing as Error).message.length).toBeGreaterThan(0);

    const badTtl = await rejection(c.set('k', 1, { ttl: 'soon' }));
    expect(badTtl).toMatchObject({ name: 'DcacheClientError', code: 'INVALID_TTL', status: 400 });

    const longKey = await rejection(c.set('x'.repeat(513), 1));
    expect(longKey).toMatchObject({ code: 'INVALID_KEY', status: 400 });

    const tooMany = await rejection(
      c.batchGet(
        Array.from({ length: 1_001 }, (_, i) => `k${i}`),
        { chunkSize: 1_001 },
      ),
    );
    expect(tooMany).toMatchObject({ code: 'BATCH_TOO_LARGE', status: 400 });
  });

  it('refuses an empty key locally: DELETE /api/v1/cache/ would be the flush', async () => {
    await c.set('survivor', 1);
    await expect(c.del('')).rejects.toThrow(TypeError);
    await expect(c.get('')).rejects.toThrow(TypeError);
    await expect(c.set('', 1)).rejects.toThrow(TypeError);
    await expect(c.batchDel(['ok', ''])).rejects.toThrow(TypeError);
    await expect(c.set('k', undefined)).rejects.toThrow(TypeError);
    expect(await c.get('survivor')).toBe(1);
  });

  it('batch helpers: split per chunk, merge counts, items, missing and failed', async () => {
    const items: Record<string, { value: number; ttl?: string }> = {};
    for (let i = 0; i < 2_500; i++) items[`b:${i}`] = { value: i };
    items['b:0'] = { value: 0, ttl: '1h' };
    const set = await c.batchSet(items, { chunkSize: 700, concurrency: 3 });
    expect(set).toEqual({ stored: 2_500, failed: {} });

    const keys = [...Object.keys(items), 'b:missing:1', 'b:missing:2', 'b:1'];
    const got = await c.batchGet<number>(keys, { chunkSize: 900 });
    expect(Object.keys(got.items)).toHaveLength(2_500);
    expect(got.items['b:1234']).toBe(1_234);
    expect(got.missing.sort()).toEqual(['b:missing:1', 'b:missing:2']);
    expect(got.failed).toEqual({});

    const viaMap = await c.batchSet(new Map([['m:1', { value: 'x' }]]), { ttl: 60 });
    expect(viaMap).toEqual({ stored: 1, failed: {} });

    const del = await c.batchDel([...Object.keys(items), 'b:missing:1']);
    expect(del).toEqual({ deleted: 2_500, failed: {} });
    expect(await c.batchGet([])).toEqual({ items: {}, missing: [], failed: {} });
  });

  it('scan() pages through every key across the 3 nodes exactly once', async () => {
    await c.flush();
    const items: Record<string, { value: number }> = {};
    for (let i = 0; i < 1_200; i++) items[`s:${i}`] = { value: i };
    await c.batchSet(items);
    await c.set('other', 1);
    const seen: string[] = [];
    let pages = 0;
    for await (const page of c.scan({ pattern: 's:*', limit: 150 })) {
      pages++;
      expect(page.keys.length).toBeLessThanOrEqual(150);
      expect(page.skipped_nodes).toEqual([]);
      seen.push(...page.keys);
      expect(pages).toBeLessThan(100);
    }
    expect(pages).toBeGreaterThanOrEqual(8);
    expect(seen).toHaveLength(1_200);
    expect(new Set(seen).size).toBe(1_200);
    const first = await c.keys({ limit: 1 });
    expect(first.keys).toHaveLength(1);
    expect(typeof first.cursor).toBe('string');
  });

  it('ring, owner, stats, health and metrics have the documented shapes', async () => {
    const ring = await c.ring();
    expect(ring.nodes.map((n) => n.id).sort()).toEqual([...px.cluster.addresses].sort());
    expect(ring.hash).toBe('murmur');
    expect(ring.nodes.reduce((a, n) => a + n.share, 0)).toBeCloseTo(1, 6);
    for (const n of ring.nodes)
      expect(n).toMatchObject({ weight: 1, state: 'active', healthy: true });

    const o = await c.owner('user:42');
    expect(px.cluster.addresses).toContain(o.node);
    expect(o).toMatchObject({
      key: 'user:42',
      home: o.node,
      replicas: [],
      ring_version: ring.version,
    });

    const st = await c.stats();
    expect(st.nodes).toHaveLength(3);
    expect(st.total.nodes).toBe(3);
    expect(st.total.keys).toBe(st.nodes.reduce((a, n) => a + (n.keys ?? 0), 0));

    const h = await c.health();
    expect(h.status).toBe('ok');
    expect(h.ring.serving).toBe(3);

    expect(await c.metrics()).toMatch(/^# HELP dcache_/m);
  });

  it('flush needs the admin token: 401 without, 403 with a wrong one', async () => {
    await c.set('f:1', 1);
    const anon = new DcacheClient({ url: px.url });
    const wrong = new DcacheClient({ url: px.url, token: 'nope' });
    try {
      expect(await rejection(anon.flush())).toMatchObject({ code: 'UNAUTHORIZED', status: 401 });
      expect(await rejection(wrong.flush())).toMatchObject({ code: 'FORBIDDEN', status: 403 });
      expect(await c.get('f:1')).toBe(1);
      expect(await c.flush()).toEqual({ flushed_nodes: 3, failed: {} });
      expect(await c.exists('f:1')).toBe(false);
    } finally {
      await anon.close();
      await wrong.close();
    }
  });

  it('ring admin: add, drain, re-activate, re-weight, remove; typed errors for each refusal', async () => {
    const extra = await startRedis();
    const before = await c.ring();
    const added = await c.addNode(extra.address, { weight: 2 });
    expect(added.version).toBeGreaterThan(before.version);
    expect(added.nodes.find((n) => n.id === extra.address)).toMatchObject({
      address: extra.address,
      weight: 2,
      state: 'active',
    });
    expect(await rejection(c.addNode(extra.address))).toMatchObject({
      code: 'NODE_EXISTS',
      status: 409,
    });
    expect(await rejection(c.addNode('no-port'))).toMatchObject({ status: 400 });
    const anon = new DcacheClient({ url: px.url });
    expect(await rejection(anon.removeNode(extra.address))).toMatchObject({
      code: 'UNAUTHORIZED',
      status: 401,
    });
    await anon.close();

    const drained = await c.drainNode(extra.address);
    expect(drained.nodes.find((n) => n.id === extra.address)).toMatchObject({
      state: 'draining',
      share: 0,
    });
    const back = await c.updateNode(extra.address, { state: 'active', weight: 1 });
    expect(back.nodes.find((n) => n.id === extra.address)).toMatchObject({
      state: 'active',
      weight: 1,
    });
    const removed = await c.removeNode(extra.address);
    expect(removed.nodes.map((n) => n.id)).not.toContain(extra.address);
    expect(removed.nodes.map((n) => n.id).sort()).toEqual([...px.cluster.addresses].sort());
    expect(await rejection(c.removeNode(extra.address))).toMatchObject({
      code: 'NODE_NOT_FOUND',
      status: 404,
    });
    await extra.close();
  });

  it('a per-call timeout rejects with DcacheTimeoutError while a node hangs (SIGSTOP)', async () => {
    const key = 'hang:1';
    await c.set(key, 1);
    const owner = (await c.owner(key)).node;
    const node = px.cluster.nodes.find((n) => n.address === owner);
    if (!node) throw new Error(`no fixture node ${owner}`);
    node.stop();
    try {
      const t0 = Date.now();
      const e = await rejection(c.get(key, { timeout: 150 }));
      const took = Date.now() - t0;
      expect(e).toBeInstanceOf(DcacheTimeoutError);
      expect(e).toBeInstanceOf(DcacheNetworkError);
      expect(e).toMatchObject({ code: 'TIMEOUT', timeoutMs: 150 });
      expect(took).toBeGreaterThanOrEqual(140);
      // The error type shows the client's deadline fired (the proxy's own, 1 s, would answer 503);
      // the bound only catches a timer that never fires, with room for a busy machine.
      expect(took).toBeLessThan(5_000);
    } finally {
      node.cont();
    }
    await waitFor(async () => (await c.tryGet(key, { timeout: 3_000 })) === 1, {
      timeout: 15_000,
      message: 'the node to answer again',
    });
  });
});

describe('client transport: unreachable, timeouts, abort, bad answers, keep-alive', () => {
  it('an unreachable proxy is a DcacheNetworkError UNREACHABLE, not a server error', async () => {
    const srv = await startHttpServer(() => {});
    const url = srv.url;
    await srv.close(); // the port is now closed
    const c = new DcacheClient({ url });
    const e = await rejection(c.ring());
    expect(e).toBeInstanceOf(DcacheNetworkError);
    expect(e).not.toBeInstanceOf(DcacheClientError);
    expect(e).toMatchObject({ code: 'UNREACHABLE', request: `GET ${url}/api/v1/ring` });
    expect((e as Error).message).toContain('ECONNREFUSED');
    await c.close();
  });

  it('times out a server that never answers (client default and per-call timeout)', async () => {
    const srv = await startHttpServer(() => {}); // accepts, never responds
    const c = new DcacheClient({ url: srv.url, timeout: 200 });
    try {
      const t0 = Date.now();
      const e = await rejection(c.stats());
      expect(e).toBeInstanceOf(DcacheTimeoutError);
      expect((e as DcacheTimeoutError).timeoutMs).toBe(200);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
      const e2 = await rejection(c.stats({ timeout: 50 }));
      expect(e2).toMatchObject({ code: 'TIMEOUT', timeoutMs: 50 });
    } finally {
      await c.close().catch(() => {});
      await srv.close();
    }
  });

  it('an AbortSignal cancels a call in flight, and an aborted signal sends nothing', async () => {
    let requests = 0;
    const srv = await startHttpServer(() => {
      requests++;
    });
    const c = new DcacheClient({ url: srv.url, timeout: 0 });
    try {
      const ac = new AbortController();
      const p = c.ring({ signal: ac.signal });
      await waitFor(() => requests === 1, { timeout: 5_000, message: 'the request to arrive' });
      ac.abort(new Error('user cancelled'));
      const e = await rejection(p);
      expect(e).toBeInstanceOf(DcacheAbortError);
      expect(e).not.toBeInstanceOf(DcacheNetworkError);
      expect(e).toMatchObject({ name: 'AbortError', code: 'ABORTED' });
      expect(((e as Error).cause as Error).message).toBe('user cancelled');

      const pre = await rejection(c.ring({ signal: AbortSignal.abort() }));
      expect(pre).toBeInstanceOf(DcacheAbortError);
      expect(requests).toBe(1);
    } finally {
      await c.close().catch(() => {});
      await srv.close();
    }
  });

  it('answers that are not the API: HTML 502 → HTTP_502 error; 200 non-JSON → BAD_RESPONSE', async () => {
    const srv = await startHttpServer((req, res) => {
      if (req.url?.endsWith('/ring')) {
        res.writeHead(502, { 'content-type': 'text/html' });
        res.end('<html><body>Bad Gateway</body></html>');
      } else {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<html>hello</html>');
      }
    });
    const c = new DcacheClient({ url: srv.url });
    try {
      const e = await rejection(c.ring());
      expect(e).toBeInstanceOf(DcacheClientError);
      expect(e).toMatchObject({ code: 'HTTP_502', status: 502 });
      expect((e as Error).message).toContain('Bad Gateway');
      const b = await rejection(c.stats());
      expect(b).toBeInstanceOf(DcacheNetworkError);
      expect(b).toMatchObject({ code: 'BAD_RESPONSE' });
    } finally {
      await c.close();
      await srv.close();
    }
  });

  it('reuses one keep-alive connection, keeps a base-URL path prefix, sends the bearer token', async () => {
    const seen: { url: string; auth: string | undefined }[] = [];
    const srv = await startHttpServer((req, res) => {
      seen.push({ url: req.url ?? '', auth: req.headers.authorization });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"key":"k","value":1}');
    });
    const c = new DcacheClient({ url: `${srv.url}/dcache/`, token: 't0k' });
    try {
      for (let i = 0; i < 20; i++) expect(await c.get(`k ${i}`)).toBe(1);
      // Sequential calls share a connection (undici may open a second while the first is released).
      expect(srv.connections()).toBeLessThanOrEqual(2);
      expect(seen[3]).toEqual({ url: '/dcache/api/v1/cache/k%203', auth: 'Bearer t0k' });
    } finally {
      await c.close();
      await srv.close();
    }
  });

  it('rejects a bad base URL or timeout at construction', () => {
    expect(() => new DcacheClient({ url: 'not a url' })).toThrow(TypeError);
    expect(() => new DcacheClient({ url: 'ftp://x:1' })).toThrow(/http/);
    expect(() => new DcacheClient({ url: 'http://x:1/?a=1' })).toThrow(/query/);
    expect(() => new DcacheClient({ timeout: -1 })).toThrow(/timeout/);
  });
});

describe('batch failures are reported per key (a node killed)', () => {
  let px: ProxyFixture;
  let c: DcacheClient;

  beforeAll(async () => {
    // No ejection during the test: the dead node keeps its keys, so they fail per key.
    px = await startProxy(3, {
      DC_HEALTH_INTERVAL: '30s',
      DC_HEALTH_TIMEOUT: '1s',
      DC_HEALTH_FAILURE_THRESHOLD: '1000',
    });
    c = new DcacheClient({ url: px.url, token: 'admin-secret', timeout: 5_000 });
  });
  afterAll(async () => {
    await c?.close();
    await px?.stop();
  });

  it('207: the failed map names exactly the dead node’s keys; 503 ALL_FAILED resolves with all', async () => {
    const keys = Array.from({ length: 300 }, (_, i) => `f:${i}`);
    expect(await c.batchSet(Object.fromEntries(keys.map((k) => [k, { value: k }])))).toEqual({
      stored: 300,
      failed: {},
    });
    const owners = new Map<string, string>();
    for (const k of keys) owners.set(k, (await c.owner(k)).node as string);
    const victim = px.cluster.nodes[0];
    if (!victim) throw new Error('no node');
    const onVictim = keys.filter((k) => owners.get(k) === victim.address).sort();
    expect(onVictim.length).toBeGreaterThan(30);
    await victim.kill();

    const got = await c.batchGet(keys);
    expect(Object.keys(got.failed).sort()).toEqual(onVictim);
    for (const code of Object.values(got.failed)) expect(code).toMatch(/^NODE_/);
    expect(Object.keys(got.items)).toHaveLength(keys.length - onVictim.length);
    expect(got.missing).toEqual([]);

    const onlyDead = await c.batchGet(onVictim);
    expect(Object.keys(onlyDead.failed).sort()).toEqual(onVictim);
    expect(onlyDead.items).toEqual({});

    const del = await c.batchDel(keys);
    expect(del.deleted).toBe(keys.length - onVictim.length);
    expect(Object.keys(del.failed).sort()).toEqual(onVictim);

    const set = await c.batchSet(Object.fromEntries(onVictim.map((k) => [k, { value: 1 }])));
    expect(set.stored).toBe(0);
    expect(Object.keys(set.failed).sort()).toEqual(onVictim);

    const single = await rejection(c.get(onVictim[0] as string));
    expect(single).toBeInstanceOf(DcacheClientError);
    expect((single as DcacheClientError).status).toBeGreaterThanOrEqual(502);
  });
});
