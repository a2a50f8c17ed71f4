/**
 * Case 5: proxy RSS after a warm-up and after a long mixed load; growth in %. RSS is sampled
 * every 250 ms; each figure is the median over the last seconds of its phase (one instant's RSS
 * mostly says where the garbage collector happens to be), and the load phase's trend is fitted.
 */
import { startRedisCluster } from '@dcache/test-utils';
import { runLoad } from '../lib/load.js';
import type { RequestSpec } from '../lib/load-spec.js';
import { pinRedis, rssBytes, seed, startProxy } from '../lib/procs.js';
import { fmt, median } from '../lib/stats.js';
import { type BenchContext, type CaseResult, check, type Row } from '../lib/types.js';
import { batchGetSpec, getSpec, keys, putSpec, rng, VALUE } from './data.js';

const MiB = 2 ** 20;

/** Least-squares slope of y over x. */
function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return Number.NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

/** Run case 5. */
export async function memory(ctx: BenchContext): Promise<CaseResult> {
  const redis = await startRedisCluster(3);
  pinRedis(redis.nodes);
  const proxy = await startProxy(redis.addressList);
  const warmS = ctx.quick ? 1 : 15;
  const loadS = ctx.quick ? 5 : 60;
  const windowS = ctx.quick ? 1 : 5;
  try {
    const hot = keys('mem', 5_000);
    await seed(proxy.url, hot, VALUE);
    const r = rng(5);
    const batchSet: RequestSpec = {
      method: 'POST',
      paths: ['/api/v1/cache/batch'],
      bodies: Array.from({ length: 32 }, () =>
        JSON.stringify({
          items: Object.fromEntries(
            Array.from({ length: 10 }, () => [
              `memw:${Math.floor(r() * 20_000)}`,
              { value: VALUE, ttl: '30s' },
            ]),
          ),
        }),
      ),
    };
    const mix: RequestSpec[] = [
      getSpec(hot),
      putSpec(keys('memp', 20_000)),
      getSpec(hot.slice(2_500)),
      batchGetSpec(hot, 10, 64),
      getSpec(keys('absent', 20_000)),
      batchSet,
    ];
    // t: seconds relative to the start of the measured load (negative during the warm-up).
    const series: { t: number; rss: number }[] = [];
    let startedAt = Number.NaN;
    let endedAt = Number.NaN;
    const sampler = setInterval(() => {
      const now = Date.now();
      const t = Number.isNaN(startedAt) ? Number.NaN : (now - startedAt) / 1_000;
      series.push({ t, rss: rssBytes(proxy.pid) });
    }, 250);
    const t0 = Date.now();
    ctx.log(`case 5 mixed load: ${warmS} s warm-up, ${loadS} s measured`);
    let m: Awaited<ReturnType<typeof runLoad>>;
    try {
      m = await runLoad(
        {
          url: proxy.url,
          connections: ctx.connections,
          durationS: loadS,
          warmupS: warmS,
          requests: mix,
        },
        {
          watch: { server: [proxy.pid], redis: redis.nodes.map((n) => n.pid!) },
          redis: redis.nodes,
          onStart: (at) => {
            startedAt = at;
          },
          onEnd: (at) => {
            endedAt = at;
          },
        },
      );
    } finally {
      clearInterval(sampler);
    }
    // Samples taken before the start event have t NaN: give them their time before the start.
    const warmLen = series.findIndex((s) => !Number.isNaN(s.t));
    const warm = series.slice(0, warmLen < 0 ? series.length : warmLen);
    const load = series.slice(warm.length).filter((s) => s.t * 1_000 <= endedAt - startedAt);
    const warmTail = warm.slice(-Math.round(windowS * 4)).map((s) => s.rss);
    const loadTail = load.slice(-Math.round(windowS * 4)).map((s) => s.rss);
    const before = median(warmTail);
    const after = median(loadTail);
    const growth = (100 * (after - before)) / before;
    const peak = Math.max(...series.map((s) => s.rss));
    const trend = slope(
      load.map((s) => s.t / 60),
      load.map((s) => s.rss / MiB),
    );
    const ok2xx = Object.entries(m.status)
      .filter(([s]) => s.startsWith('2'))
      .reduce((a, [, n]) => a + n, 0);
    const rows: Row[] = [
      {
        label: `RSS at the end of a ${warmS} s warm-up`,
        unit: 'MiB',
        value: before / MiB,
        runs: [before / MiB],
        note: `median of the last ${windowS} s of samples`,
      },
      {
        label: `RSS at the end of ${loadS} s of mixed load`,
        unit: 'MiB',
        value: after / MiB,
        runs: [after / MiB],
        p50: m.latency.p50,
        p99: m.latency.p99,
        max: m.latency.max,
        cpu: { ...m.cpu, 'server core busy': m.coreBusy.server, 'load core busy': m.coreBusy.load },
        cpuUs: ((m.cpu.server ?? Number.NaN) * 10_000) / m.rps,
        ...(m.redisCmdsPerRead !== undefined ? { cmdsPerRead: m.redisCmdsPerRead } : {}),
        non2xx: m.requests - ok2xx,
        errors: m.errors + m.timeouts,
        note: `median of the last ${windowS} s of samples; ${Math.round(m.rps).toLocaleString('en')} req/s over the mix; trend over the load ${fmt(trend)} MiB/min; peak ${fmt(peak / MiB)} MiB; the non-2xx are the deliberate 404s of absent keys`,
      },
    ];
    const every = Math.max(1, Math.floor(series.length / 16));
    return {
      id: 'memory',
      title: '5. Memory: proxy RSS under a long mixed load',
      setup: `3 redis-servers, one dcache; each connection cycles GET (hit), PUT (20,000 keys), GET (hit), batch get of 10, GET (absent key, 404), batch set of 10 (30 s TTL); ${ctx.connections} connections; RSS of the proxy from /proc every 250 ms`,
      rows,
      checks: [check('RSS growth', growth, '<=', 10, '%')],
      notes: [
        `RSS samples (s from the start of the warm-up: MiB): ${series
          .filter((_, i) => i % every === 0)
          .map((s, i) => `${((i * every * 250) / 1_000).toFixed(0)}: ${fmt(s.rss / MiB)}`)
          .join(', ')}`,
      ],
      chart: {
        throughput: {
          unit: 'MiB RSS',
          bars: [
            { label: 'dcache after warm-up', value: before / MiB },
            { label: `dcache after ${loadS} s`, value: after / MiB },
            { label: 'dcache peak', value: peak / MiB },
          ],
        },
      },
      raw: { series, before, after, trend, t0, load: m },
    };
  } finally {
    await proxy.stop().catch(() => {});
    await redis.stopAll();
  }
}
