/** Case 5: proxy RSS after a warm-up and after a long mixed load; growth in %. */
import { startRedisCluster } from '@dcache/test-utils';
import { runLoad } from '../lib/load.js';
import type { RequestSpec } from '../lib/load-spec.js';
import { pinRedis, rssBytes, seed, startProxy } from '../lib/procs.js';
import { fmt } from '../lib/stats.js';
import { type BenchContext, type CaseResult, check, type Row } from '../lib/types.js';
import { batchGetSpec, getSpec, keys, putSpec, rng, VALUE } from './data.js';

const MiB = 2 ** 20;

/** Run case 5. */
export async function memory(ctx: BenchContext): Promise<CaseResult> {
  const redis = await startRedisCluster(3);
  pinRedis(redis.nodes);
  const proxy = await startProxy(redis.addressList);
  const warmS = ctx.quick ? 2 : 15;
  const loadS = ctx.quick ? 5 : 60;
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
    const series: { t: number; rss: number }[] = [];
    let atStart = Number.NaN;
    let atEnd = Number.NaN;
    const t0 = Date.now();
    const sampler = setInterval(
      () => series.push({ t: (Date.now() - t0) / 1_000, rss: rssBytes(proxy.pid) }),
      500,
    );
    ctx.log(`case 5 mixed load: ${warmS} s warm-up, ${loadS} s measured`);
    const m = await runLoad(
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
        onStart: () => {
          atStart = rssBytes(proxy.pid);
        },
        onEnd: () => {
          atEnd = rssBytes(proxy.pid);
        },
      },
    );
    clearInterval(sampler);
    const growth = (100 * (atEnd - atStart)) / atStart;
    const peak = Math.max(...series.map((s) => s.rss));
    const rows: Row[] = [
      {
        label: `RSS after ${warmS} s warm-up`,
        unit: 'MiB',
        value: atStart / MiB,
        runs: [atStart / MiB],
      },
      {
        label: `RSS after ${loadS} s mixed load`,
        unit: 'MiB',
        value: atEnd / MiB,
        runs: [atEnd / MiB],
        p50: m.latency.p50,
        p99: m.latency.p99,
        max: m.latency.max,
        cpu: { ...m.cpu, 'server core busy': m.coreBusy.server, 'load core busy': m.coreBusy.load },
        non2xx:
          m.requests -
          Object.entries(m.status)
            .filter(([s]) => s.startsWith('2'))
            .reduce((a, [, n]) => a + n, 0),
        errors: m.errors + m.timeouts,
        note: `${Math.round(m.rps).toLocaleString('en')} req/s over the mix; the non-2xx are the deliberate 404s of absent keys; peak RSS ${fmt(peak / MiB)} MiB`,
      },
    ];
    return {
      id: 'memory',
      title: '5. Memory: proxy RSS under a long mixed load',
      setup: `3 redis-servers, one dcache; each connection cycles GET (hit), PUT (20,000 keys), GET (hit), batch get of 10, GET (absent key, 404), batch set of 10 (30 s TTL); ${ctx.connections} connections; RSS from /proc at the end of the warm-up and at the end of the load`,
      rows,
      checks: [check('RSS growth', growth, '<=', 10, '%')],
      notes: [
        `RSS samples every 500 ms: ${series
          .filter((_, i) => i % Math.max(1, Math.floor(series.length / 12)) === 0)
          .map((s) => `${s.t.toFixed(0)} s ${fmt(s.rss / MiB)}`)
          .join(', ')} MiB`,
      ],
      chart: {
        throughput: {
          unit: 'MiB RSS',
          bars: [
            { label: 'dcache after warm-up', value: atStart / MiB },
            { label: `dcache after ${loadS} s`, value: atEnd / MiB },
            { label: 'dcache peak', value: peak / MiB },
          ],
        },
      },
      raw: { series, atStart, atEnd, load: m },
    };
  } finally {
    await proxy.stop().catch(() => {});
    await redis.stopAll();
  }
}
