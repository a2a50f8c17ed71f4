/**
 * The long variant of stale-reads.test.ts (not in `npm test`; `npm run soak`): three peered
 * proxies over four redis-servers under continuous load while random faults follow each other
 * for DC_SOAK_MINUTES (default 5). Prints reads, stale, misses and errors per kind of fault; every
 * kind must show 0 stale reads.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startProxyCluster, startRedisCluster } from '@dcache/test-utils';
import { afterAll, expect, it } from 'vitest';
import { CONSISTENCY_ENV, keysOwnedBy, pause, waitAgree, waitRouting } from './cluster.js';
import { check, explain, Workload } from './register.js';

const MINUTES = Number(process.env.DC_SOAK_MINUTES ?? 5);

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

it(`random faults for ${MINUTES} min: 0 stale reads`, {
  timeout: (MINUTES + 5) * 60_000,
}, async () => {
  const redis = await startRedisCluster(4);
  cleanups.push(() => redis.stopAll());
  const cluster = await startProxyCluster({
    proxies: 3,
    addresses: redis.addresses,
    env: CONSISTENCY_ENV,
    envOf: (i) => ({ DC_HEALTH_FAILURE_THRESHOLD: ['1', '3', '20'][i] as string }),
  });
  cleanups.push(() => cluster.close());
  const urls = cluster.proxies.map((p) => p.url);
  await waitAgree(urls);
  const keys: string[] = [];
  for (const a of redis.addresses)
    keys.push(...(await keysOwnedBy(urls[0] as string, a, 6, `soak:${a}`)));
  const w = new Workload({ urls, keys, readersPerProxy: 3, deleteEvery: 7 }).start();
  const admin = (url: string, method: string, path: string, body?: unknown) =>
    fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: 'Bearer admin',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;
  const faults: Record<string, () => Promise<void>> = {
    'sigstop short': async () => {
      const n = pick(redis.nodes);
      n.stop();
      w.event(`stopped ${n.address}`);
      await pause(300 + Math.random() * 1_500);
      n.cont();
      await waitRouting(urls, n.address, 'up');
    },
    'sigkill restart': async () => {
      const n = pick(redis.nodes);
      await n.kill();
      w.event(`killed ${n.address}`);
      await waitRouting(urls, n.address, 'out');
      w.event(`${n.address} out everywhere`);
      await n.restart();
      w.event(`restarted ${n.address}`);
      await waitRouting(urls, n.address, 'up');
      w.event(`${n.address} up everywhere`);
    },
    'sigstop long': async () => {
      const n = pick(redis.nodes);
      n.stop();
      w.event(`stopped ${n.address}`);
      await waitRouting(urls, n.address, 'out');
      await pause(Math.random() * 2_000);
      n.cont();
      await waitRouting(urls, n.address, 'up');
    },
    'drain activate': async () => {
      const n = pick(redis.nodes);
      w.event(`drain ${n.address}`);
      const id = encodeURIComponent(n.address);
      await admin(pick(urls), 'PATCH', `/api/v1/ring/nodes/${id}`, { state: 'draining' });
      await waitRouting(urls, n.address, 'up', 'draining');
      await pause(Math.random() * 1_500);
      await admin(pick(urls), 'PATCH', `/api/v1/ring/nodes/${id}`, { state: 'active' });
      await waitRouting(urls, n.address, 'up', 'active');
    },
    'remove add': async () => {
      const n = pick(redis.nodes);
      w.event(`remove ${n.address}`);
      await admin(pick(urls), 'DELETE', `/api/v1/ring/nodes/${encodeURIComponent(n.address)}`);
      await waitRouting(urls, n.address, undefined);
      await pause(Math.random() * 1_500);
      await admin(pick(urls), 'POST', '/api/v1/ring/nodes', { address: n.address });
      await waitRouting(urls, n.address, 'up', 'active');
    },
    'proxy restart': async () => {
      const p = pick(cluster.proxies);
      w.event(`restart ${p.name}`);
      await p.stop();
      await pause(Math.random() * 1_000);
      await p.restart();
      await waitAgree(urls);
    },
    'proxy sigstop': async () => {
      const p = pick(cluster.proxies);
      p.pause();
      w.event(`paused ${p.name}`);
      await pause(500 + Math.random() * 3_000);
      p.resume();
      await waitAgree(urls);
    },
  };
  const until = performance.now() + MINUTES * 60_000;
  let rounds = 0;
  while (performance.now() < until) {
    const [name, fault] = pick(Object.entries(faults));
    w.phase = name;
    w.event(`start ${name}`);
    await fault();
    w.event(`end ${name}`);
    w.phase = `after ${name}`;
    await waitAgree(urls);
    await pause(500 + Math.random() * 1_000);
    rounds++;
  }
  await w.stop();
  const r = check(w.ops);
  console.log(`[soak] ${MINUTES} min, ${rounds} faults`);
  console.table(
    Object.entries(r.phases).map(([phase, c]) => ({ phase, ...c, codes: JSON.stringify(c.codes) })),
  );
  for (const st of r.stale.slice(0, 5)) console.log(`[soak] ${explain(w, st)}`);
  if (r.stale.length > 0) {
    // The proxies' own account of the seconds around the first stale read, and their whole logs.
    const first = r.stale[0]!;
    const wrote = w.ops.find(
      (o) => o.key === first.key && o.kind === 'put' && o.seq === first.read,
    );
    const from = w.epoch + Math.min(first.at, wrote?.start ?? first.at) - 1_500;
    const to = w.epoch + first.at + 1_500;
    for (const p of cluster.proxies) {
      const out = p.output();
      const file = join(tmpdir(), `dcache-soak-${p.name}.log`);
      writeFileSync(file, out);
      const lines = out
        .split('\n')
        .filter((l) => /ring changed|rejoin:|breaker|stood still|taken out/.test(l))
        .filter((l) => {
          const t = Number(/"time":(\d+)/.exec(l)?.[1] ?? 0);
          return t >= from && t <= to;
        })
        .slice(-80);
      console.log(
        `[soak] ${p.name} around the first stale read (full log: ${file}):\n${lines.join('\n')}`,
      );
    }
  }
  expect(rounds).toBeGreaterThan(0);
  expect(r.stale).toEqual([]);
});
