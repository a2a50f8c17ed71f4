import { setRouting } from '@dcache/ring';
import { describe, expect, it } from 'vitest';
import { CacheService, TOMBSTONE } from '../src/cache-service.js';
import { DcacheError } from '../src/errors.js';
import { MembershipHolder, seedDoc } from '../src/membership/membership-holder.js';
import { createMetrics } from '../src/metrics.js';
import { Router } from '../src/router.js';

/**
 * The batch paths of the cache service over in-memory nodes that speak the connection subset the
 * service uses (get, set with PX/NX/GET, del, mget, pttl, pipeline): which node gets which
 * command, and what a down node does to exactly its keys. Real Redis runs in the route and fault
 * suites; here the placement and merge are checked key by key.
 */

const NODES = ['10.0.0.1:6379', '10.0.0.2:6379', '10.0.0.3:6379', '10.0.0.4:6379'];
const KEYS = Array.from({ length: 200 }, (_, i) => `b:${i}`);

type Store = Map<string, string>;

function memoryConn(store: Store) {
  const set = (k: string, v: string, ...opts: (string | number)[]) => {
    const old = store.get(k) ?? null;
    if (opts.includes('NX') && old !== null) return opts.includes('GET') ? old : null;
    store.set(k, v);
    return opts.includes('GET') ? old : 'OK';
  };
  const cmds = {
    get: (k: string) => store.get(k) ?? null,
    set,
    del: (k: string) => (store.delete(k) ? 1 : 0),
    mget: (ks: string[]) => ks.map((k) => store.get(k) ?? null),
    pttl: (k: string) => (store.has(k) ? -1 : -2),
  };
  type Cmds = typeof cmds;
  const async = Object.fromEntries(
    Object.entries(cmds).map(([name, f]) => [
      name,
      (...a: unknown[]) => Promise.resolve((f as (...x: unknown[]) => unknown)(...a)),
    ]),
  ) as { [K in keyof Cmds]: (...a: Parameters<Cmds[K]>) => Promise<ReturnType<Cmds[K]>> };
  return {
    ...async,
    pipeline() {
      const queued: (() => unknown)[] = [];
      const pl = {
        exec: () => Promise.resolve(queued.map((q) => [null, q()] as [Error | null, unknown])),
      } as Record<string, unknown>;
      for (const [name, f] of Object.entries(cmds))
        pl[name] = (...a: unknown[]) => {
          queued.push(() => (f as (...x: unknown[]) => unknown)(...a));
          return pl;
        };
      return pl;
    },
  };
}

function setup(replicas: number, warmupMs = 0) {
  const holder = new MembershipHolder(seedDoc(NODES), { hash: 'murmur' });
  const router = new Router(holder, replicas, warmupMs);
  const stores = new Map(NODES.map((n) => [n, new Map<string, string>()]));
  const down = new Set<string>();
  const calls: { node: string; op: string }[] = [];
  const journal: [string, string][] = [];
  const exec = {
    run(node: string, op: string, fn: (c: unknown) => Promise<unknown>) {
      calls.push({ node, op });
      if (down.has(node) || !stores.has(node))
        return Promise.reject(new DcacheError('NODE_UNAVAILABLE', `node ${node} is down`));
      return fn(memoryConn(stores.get(node) as Store));
    },
  };
  const metrics = createMetrics({ defaultMetrics: false });
  const cache = new CacheService({
    router,
    exec: exec as never,
    journal: { record: (n: string, k: string) => journal.push([n, k]) } as never,
    metrics,
    log: { warn() {}, info() {} },
  });
  const value = (k: string) => JSON.stringify({ k });
  const items = (ks: readonly string[]) => ks.map((key) => ({ key, value: value(key), ttlMs: 0 }));
  return { holder, router, stores, down, calls, journal, cache, value, items, metrics };
}

const holders = (stores: Map<string, Store>, k: string) =>
  [...stores].filter(([, s]) => s.has(k)).map(([n]) => n);

describe('CacheService batches over the splitter', () => {
  it('R=1: one MGET/pipeline per node, values merged in request order, duplicates once', async () => {
    const { cache, router, stores, calls, items, value } = setup(1);
    const set = await cache.batchSet(items(KEYS));
    expect(set).toMatchObject({ status: 200, count: KEYS.length, failedCount: 0, failed: {} });
    for (const k of KEYS) expect(holders(stores, k)).toEqual([router.primary(k)]);
    expect(calls.filter((c) => c.op === 'pipeline').length).toBe(NODES.length);
    calls.length = 0;
    const asked = [...KEYS.slice(0, 50), 'nope:1', KEYS[3] as string, 'nope:2', 'nope:1'];
    const got = await cache.batchGet(asked);
    expect(calls.every((c) => c.op === 'mget')).toBe(true);
    expect(new Set(calls.map((c) => c.node)).size).toBe(calls.length);
    expect(got.keys).toEqual([...KEYS.slice(0, 50), 'nope:1', 'nope:2']);
    expect(got.values).toEqual([...KEYS.slice(0, 50).map(value), null, null]);
    expect(got.missing).toEqual(['nope:1', 'nope:2']);
    expect(got).toMatchObject({ status: 200, unique: 52, failedCount: 0 });
  });

  it('R=1: a down node fails exactly its keys (207); every node down is 503', async () => {
    const { cache, router, down, items, value } = setup(1);
    await cache.batchSet(items(KEYS));
    const X = NODES[2] as string;
    down.add(X);
    const got = await cache.batchGet(KEYS);
    const onX = KEYS.filter((k) => router.primary(k) === X);
    expect(onX.length).toBeGreaterThan(0);
    expect(got.status).toBe(207);
    expect(Object.keys(got.failed).sort()).toEqual([...onX].sort());
    for (const k of onX) expect(got.failed[k]).toBe('NODE_UNAVAILABLE');
    KEYS.forEach((k, i) => {
      expect(got.values[i]).toBe(onX.includes(k) ? null : value(k));
    });
    expect(got.missing).toEqual([]);
    const del = await cache.batchDel(KEYS);
    expect(del).toMatchObject({ status: 207, count: KEYS.length - onX.length });
    expect(Object.keys(del.failed).sort()).toEqual([...onX].sort());
    for (const n of NODES) down.add(n);
    const none = await cache.batchGet(KEYS);
    expect(none).toMatchObject({ status: 503, failedCount: KEYS.length });
    const w = await cache.batchSet(items(KEYS));
    expect(w).toMatchObject({ status: 503, count: 0, failedCount: KEYS.length });
  });

  it('the answer budget fails the keys past it (207) and 413 when no value fits', async () => {
    const { cache, items } = setup(1);
    await cache.batchSet(items(KEYS));
    const each = JSON.stringify({ k: 'b:100' }).length;
    const part = await cache.batchGet(KEYS, { maxBytes: each * 20, chunkKeys: 7 });
    expect(part.status).toBe(207);
    const values = part.values.filter((v) => v !== null) as string[];
    const served = values.length;
    expect(served).toBeGreaterThan(0);
    expect(values.reduce((n, v) => n + v.length, 0)).toBeLessThanOrEqual(each * 20);
    expect(part.failedCount).toBe(KEYS.length - served);
    expect(new Set(Object.values(part.failed))).toEqual(new Set(['RESPONSE_TOO_LARGE']));
    const none = await cache.batchGet(KEYS.slice(0, 5), { maxBytes: 3, chunkKeys: 2 });
    expect(none).toMatchObject({ status: 413, failedCount: 5 });
  });

  it('R=2: writes reach both owners; a down primary fails its keys, a down replica is journalled', async () => {
    const { cache, router, stores, down, journal, items } = setup(2);
    const X = NODES[0] as string;
    down.add(X);
    const res = await cache.batchSet(items(KEYS));
    const primaryX = KEYS.filter((k) => router.owners(k)[0] === X);
    const replicaX = KEYS.filter((k) => router.owners(k)[1] === X);
    expect(primaryX.length).toBeGreaterThan(0);
    expect(replicaX.length).toBeGreaterThan(0);
    expect(Object.keys(res.failed).sort()).toEqual([...primaryX].sort());
    expect(res.count).toBe(KEYS.length - primaryX.length);
    expect(
      journal
        .filter(([n]) => n === X)
        .map(([, k]) => k)
        .sort(),
    ).toEqual([...replicaX].sort());
    for (const k of KEYS)
      expect(holders(stores, k).sort()).toEqual(
        router
          .owners(k)
          .filter((n) => n !== X)
          .sort(),
      );
    // Reads of X's primary keys fall back to the replica, which holds them: nothing fails.
    const got = await cache.batchGet(KEYS);
    expect(got.status).toBe(200);
    expect(got.missing).toEqual([]);
  });

  it('R=2: a tombstone is a definite miss, and a replica hit is copied back to the first owner', async () => {
    const { cache, router, stores, items, value, metrics } = setup(2);
    await cache.batchSet(items(KEYS));
    const [gone, lost] = [KEYS[0] as string, KEYS[1] as string];
    const del = await cache.batchDel([gone, gone, 'never']);
    expect(del).toMatchObject({ status: 200, count: 1, unique: 2 });
    // The first owner lost `lost` (a restart): the replica serves it and repairs the owner.
    const first = router.owners(lost)[0] as string;
    stores.get(first)?.delete(lost);
    // `gone`: a tombstone on each owner; the replica's value must not come back.
    for (const n of router.owners(gone)) expect(stores.get(n)?.get(gone)).toBe(TOMBSTONE);
    const got = await cache.batchGet([gone, lost]);
    expect(got.values).toEqual([null, value(lost)]);
    expect(got.missing).toEqual([gone]);
    for (let i = 0; i < 100 && !stores.get(first)?.has(lost); i++)
      await new Promise((r) => setImmediate(r));
    expect(stores.get(first)?.get(lost)).toBe(value(lost));
    expect((await metrics.fallbackReads.get()).values[0]?.value).toBe(1);
  });

  it('warm-up: keys that moved to a returning node are read from, and copied from, their previous owner', async () => {
    const { cache, router, holder, stores, items, value, calls } = setup(1, 60_000);
    const X = NODES[3] as string;
    const out = (state: 'out' | 'up') =>
      holder.apply(setRouting(holder.current.doc, X, state, 'p', Date.now()), 'health');
    out('out');
    await cache.batchSet(items(KEYS));
    const before = router.view();
    out('up');
    router.changed(before);
    const back = KEYS.filter((k) => router.primary(k) === X);
    expect(back.length).toBeGreaterThan(0);
    calls.length = 0;
    const got = await cache.batchGet(KEYS);
    expect(got.status).toBe(200);
    expect(got.values).toEqual(KEYS.map(value));
    // Round 0 asks every key's owner, round 1 the previous owners of the misses on X.
    expect(calls.filter((c) => c.node === X && c.op === 'mget').length).toBe(1);
    for (let i = 0; i < 100 && back.some((k) => !stores.get(X)?.has(k)); i++)
      await new Promise((r) => setImmediate(r));
    for (const k of back) expect(stores.get(X)?.get(k)).toBe(value(k));
    // A write during the window drops the previous owner's copy.
    await cache.batchSet(items(back));
    for (const k of back) expect(holders(stores, k)).toEqual([X]);
  });
});
