/**
 * One routing view for the cluster: peered proxies under load through faults, admin changes and a
 * proxy restart; the register checker counts stale reads per phase and every scenario must show 0.
 * The tables printed ([consistency] lines) are the figures of docs/reliability.md.
 */
import {
  freePort,
  type ProxyCluster,
  type RedisCluster,
  type RedisServer,
  startProxyCluster,
  startRedisCluster,
} from '@dcache/test-utils';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  AgreementSampler,
  CONSISTENCY_ENV,
  keysOwnedBy,
  pause,
  viewSummary,
  waitAgree,
  waitRouting,
} from './cluster.js';
import { check, explain, type Op, Workload } from './register.js';

const ADMIN = { authorization: 'Bearer admin' };

/** The fault of a scenario: X SIGKILLed, out everywhere, restarted empty, back everywhere. */
async function killAndRestartEmpty(node: RedisServer, urls: readonly string[], x: string) {
  await node.kill();
  await waitRouting(urls, x, 'out');
  await pause(500);
  await node.restart();
  await waitRouting(urls, x, 'up');
}

/** The fault of a scenario: X SIGSTOPped until out everywhere, then continued with its old data. */
async function stopUntilOut(node: RedisServer, urls: readonly string[], x: string) {
  node.stop();
  await waitRouting(urls, x, 'out');
  await pause(1_000);
  node.cont();
  await waitRouting(urls, x, 'up');
}

/** Run `fault` under load; print and return the checker's table. */
async function scenario(
  name: string,
  urls: readonly string[],
  keys: readonly string[],
  fault: (w: Workload) => Promise<void>,
  opts: { readersPerProxy?: number; deleteEvery?: number; respPorts?: readonly number[] } = {},
): Promise<{ stale: number; ops: Op[] }> {
  const w = new Workload({
    urls,
    keys,
    readersPerProxy: opts.readersPerProxy ?? 3,
    deleteEvery: opts.deleteEvery ?? 7,
    ...(opts.respPorts ? { respPorts: opts.respPorts } : {}),
  });
  // Every proxy's routing changes go into the events that explain a stale read.
  const sampler = new AgreementSampler(urls, (i, r) => w.event(`p${i} ${viewSummary(r)}`));
  w.start();
  await pause(800);
  w.phase = 'fault';
  w.event('fault');
  await fault(w);
  w.phase = 'after';
  w.event('fault steps done');
  await waitAgree(urls);
  await pause(1_500);
  await w.stop();
  const agree = await sampler.stop();
  const r = check(w.ops);
  const sorted = [...agree].sort((a, b) => a - b);
  console.log(
    `[consistency] ${name}: ${JSON.stringify(r.phases)} agree_ms ${JSON.stringify({
      changes: sorted.length,
      median: Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0),
      max: Math.round(sorted.at(-1) ?? 0),
    })}`,
  );
  for (const st of r.stale.slice(0, 3)) console.log(`[consistency] ${explain(w, st, 1_500)}`);
  // The workload really ran in every phase (a checker over nothing proves nothing).
  for (const p of ['before', 'fault', 'after']) {
    expect(r.phases[p]?.reads ?? 0, `${name}: reads in ${p}`).toBeGreaterThan(0);
  }
  expect(r.phases.after?.reads ?? 0).toBeGreaterThan(r.phases.after?.errors ?? 0);
  return { stale: r.stale.length, ops: w.ops };
}

describe('register checker', () => {
  it('finds a stale read and lets misses, errors and concurrent writes pass', () => {
    const op = (o: Partial<Op> & Pick<Op, 'kind' | 'start' | 'end'>): Op => ({
      key: 'k',
      seq: undefined,
      ok: true,
      proxy: 0,
      phase: 'p',
      ...o,
    });
    const ops = [
      op({ kind: 'put', seq: 1, start: 0, end: 1 }),
      op({ kind: 'put', seq: 2, start: 2, end: 3 }),
      op({ kind: 'get', seq: 1, start: 4, end: 5 }), // stale: 2 was acknowledged at 3
      op({ kind: 'get', seq: 1, start: 2.5, end: 5 }), // concurrent with write 2: fine
      op({ kind: 'get', seq: undefined, start: 4, end: 5 }), // a miss: fine
      op({ kind: 'get', seq: undefined, ok: false, start: 4, end: 5 }), // an error: fine
      op({ kind: 'del', seq: 3, start: 6, end: 7 }),
      op({ kind: 'get', seq: 2, start: 8, end: 9 }), // stale: deleted at 7
    ];
    const r = check(ops);
    expect(r.stale.map((s) => [s.read, s.newest_acked])).toEqual([
      [1, 2],
      [2, 3],
    ]);
    expect(r.phases.p).toMatchObject({ reads: 5, stale: 2, misses: 1, errors: 1, writes: 3 });
  });
});

describe.each([2, 3])(
  '%i peered proxies over three redis-servers, asymmetric health (F=1, then F=50)',
  (n) => {
    let redis: RedisCluster;
    let cluster: ProxyCluster;
    let urls: string[];
    let x: string;
    let keys: string[];

    afterAll(async () => {
      await cluster?.close();
      await redis?.stopAll();
    });

    // A failed scenario prints what each proxy did to the routing (its last 60 such log lines).
    afterEach((ctx) => {
      if (ctx.task.result?.state !== 'fail' || !cluster) return;
      for (const [i, p] of cluster.proxies.entries()) {
        const lines = p
          .output()
          .split('\n')
          .filter((l) => /rejoin|routing|breaker|taken out/.test(l));
        console.log(`[consistency] p${i} routing log:\n${lines.slice(-60).join('\n')}`);
      }
    });

    it('starts', async () => {
      redis = await startRedisCluster(3);
      cluster = await startProxyCluster({
        proxies: n,
        addresses: redis.addresses,
        env: CONSISTENCY_ENV,
        envOf: (i) => ({ DC_HEALTH_FAILURE_THRESHOLD: i === 0 ? '1' : '50' }),
      });
      urls = cluster.proxies.map((p) => p.url);
      x = redis.addresses[1] as string;
      await waitAgree(urls);
      keys = await keysOwnedBy(urls[0] as string, x, 12, 'reg');
      expect(keys).toHaveLength(12);
    });

    it('X SIGSTOPped for 1.5 s and continued: 0 stale reads', async () => {
      const node = redis.nodes[1]!;
      const r = await scenario(`sigstop 1.5 s (${n} proxies, F=1/F=50)`, urls, keys, async () => {
        node.stop();
        await pause(1_500);
        node.cont();
        await waitRouting(urls, x, 'up');
      });
      expect(r.stale).toBe(0);
    });

    it('X SIGKILLed and restarted empty: 0 stale reads', async () => {
      const node = redis.nodes[1]!;
      const r = await scenario(`sigkill + restart empty (${n} proxies)`, urls, keys, () =>
        killAndRestartEmpty(node, urls, x),
      );
      expect(r.stale).toBe(0);
    });

    it('X SIGSTOPped until ejected everywhere, continued with its old data: 0 stale reads', async () => {
      const node = redis.nodes[1]!;
      const r = await scenario(`long sigstop, old data back (${n} proxies)`, urls, keys, () =>
        stopUntilOut(node, urls, x),
      );
      expect(r.stale).toBe(0);
    });

    it('admin drain / activate and remove / add of X during load: 0 stale reads', async () => {
      const admin = async (url: string, method: string, path: string, body?: unknown) => {
        const r = await fetch(`${url}${path}`, {
          method,
          headers: body === undefined ? ADMIN : { ...ADMIN, 'content-type': 'application/json' },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        expect(r.status, `${method} ${path}: ${await r.text()}`).toBeLessThan(300);
      };
      const id = encodeURIComponent(x);
      const r = await scenario(
        `admin drain/activate, remove/add (${n} proxies)`,
        urls,
        keys,
        async () => {
          await admin(urls[0] as string, 'PATCH', `/api/v1/ring/nodes/${id}`, {
            state: 'draining',
          });
          await waitRouting(urls, x, 'up', 'draining');
          await pause(700);
          await admin(urls[1] as string, 'PATCH', `/api/v1/ring/nodes/${id}`, { state: 'active' });
          await waitRouting(urls, x, 'up', 'active');
          await pause(700);
          await admin(urls[1] as string, 'DELETE', `/api/v1/ring/nodes/${id}`);
          await waitRouting(urls, x, undefined);
          await pause(700);
          await admin(urls[0] as string, 'POST', '/api/v1/ring/nodes', { address: x });
          await waitRouting(urls, x, 'up', 'active');
        },
      );
      expect(r.stale).toBe(0);
    });

    it('a proxy SIGSTOPped while X leaves and returns, then continued: 0 stale reads', async () => {
      const b = cluster.proxies[1]!;
      const node = redis.nodes[1]!;
      const a = [urls[0] as string];
      const r = await scenario(
        `proxy paused, node out and back meanwhile (${n} proxies)`,
        urls,
        keys,
        async (w) => {
          b.pause();
          w.event('paused proxy-b');
          try {
            await node.kill();
            // A waits for B's confirmation until B was silent for the whole lease, then moves on.
            await waitRouting(a, x, 'out');
            w.event('X out on A');
            await node.restart();
            await waitRouting(a, x, 'up');
            w.event('X up on A');
          } finally {
            b.resume();
            w.event('resumed proxy-b');
          }
          await waitAgree(urls);
        },
      );
      expect(r.stale).toBe(0);
    });

    it('a proxy SIGTERMed and restarted during load: 0 stale reads', async () => {
      const b = cluster.proxies[1]!;
      const node = redis.nodes[1]!;
      const r = await scenario(
        `proxy restart, node out meanwhile (${n} proxies)`,
        urls,
        keys,
        async () => {
          await b.stop();
          // While B is down, X leaves and returns: B comes back with an old state file.
          await node.kill();
          await waitRouting([urls[0] as string], x, 'out');
          await node.restart();
          await waitRouting([urls[0] as string], x, 'up');
          await b.restart();
          await waitAgree(urls);
        },
      );
      expect(r.stale).toBe(0);
    });
  },
);

describe('three peered proxies, R=2', () => {
  let redis: RedisCluster;
  let cluster: ProxyCluster;
  let urls: string[];

  afterAll(async () => {
    await cluster?.close();
    await redis?.stopAll();
  });

  it('a replica owner SIGKILLed and restarted, then SIGSTOPped and continued: 0 stale reads', async () => {
    redis = await startRedisCluster(3);
    cluster = await startProxyCluster({
      proxies: 3,
      addresses: redis.addresses,
      env: { ...CONSISTENCY_ENV, DC_REPLICATION_FACTOR: '2', DC_HEALTH_FAILURE_THRESHOLD: '2' },
    });
    urls = cluster.proxies.map((p) => p.url);
    const x = redis.addresses[0] as string;
    await waitAgree(urls);
    const keys = await keysOwnedBy(urls[0] as string, x, 12, 'r2');
    const node = redis.nodes[0]!;
    const r = await scenario(
      'R=2 kill + restart, then stop + cont (3 proxies)',
      urls,
      keys,
      async () => {
        await node.kill();
        await waitRouting(urls, x, 'out');
        await node.restart();
        await waitRouting(urls, x, 'up');
        node.stop();
        await waitRouting(urls, x, 'out');
        node.cont();
        await waitRouting(urls, x, 'up');
      },
      { readersPerProxy: 2 },
    );
    expect(r.stale).toBe(0);
  });
});

describe('RESP and HTTP clients on the same keys: 2 peered proxies, asymmetric health (F=1, F=50)', () => {
  let redis: RedisCluster;
  let cluster: ProxyCluster;
  let urls: string[];
  let respPorts: number[];
  let x: string;
  let keys: string[];

  afterAll(async () => {
    await cluster?.close();
    await redis?.stopAll();
  });

  it('starts', async () => {
    redis = await startRedisCluster(3);
    respPorts = [await freePort(), await freePort()];
    cluster = await startProxyCluster({
      proxies: 2,
      addresses: redis.addresses,
      env: CONSISTENCY_ENV,
      envOf: (i) => ({
        DC_HEALTH_FAILURE_THRESHOLD: i === 0 ? '1' : '50',
        DC_RESP_PORT: String(respPorts[i]),
      }),
    });
    urls = cluster.proxies.map((p) => p.url);
    x = redis.addresses[1] as string;
    await waitAgree(urls);
    keys = await keysOwnedBy(urls[0] as string, x, 12, 'resp');
    expect(keys).toHaveLength(12);
  });

  it('X SIGKILLed and restarted empty: 0 stale reads over RESP and HTTP', async () => {
    const node = redis.nodes[1]!;
    const r = await scenario(
      'resp+http: sigkill + restart empty (2 proxies)',
      urls,
      keys,
      () => killAndRestartEmpty(node, urls, x),
      { respPorts },
    );
    // The RESP half really ran: reads and writes over RESP were recorded and acknowledged.
    expect(r.ops.filter((o) => o.resp && o.kind === 'get' && o.ok).length).toBeGreaterThan(50);
    expect(r.ops.filter((o) => o.resp && o.kind === 'put' && o.ok).length).toBeGreaterThan(50);
    expect(r.stale).toBe(0);
  });

  it('X SIGSTOPped until ejected everywhere, continued with its old data: 0 stale reads over RESP and HTTP', async () => {
    const node = redis.nodes[1]!;
    const r = await scenario(
      'resp+http: long sigstop, old data back (2 proxies)',
      urls,
      keys,
      () => stopUntilOut(node, urls, x),
      { respPorts },
    );
    expect(r.stale).toBe(0);
  });
});
