/** Case 3: GET throughput with 3 vs 32 Redis nodes behind dcache (runs interleaved). */
import { type RedisCluster, startRedisCluster } from '@dcache/test-utils';
import { type Measured, runLoad } from '../lib/load.js';
import { pinRedis, type Server, seed, startProxy } from '../lib/procs.js';
import { median, ratio } from '../lib/stats.js';
import { type BenchContext, type CaseResult, check, rowOf } from '../lib/types.js';
import { getSpec, keys, VALUE } from './data.js';

const SIZES = [3, 32] as const;
const N_KEYS = 1_000;

/** Run case 3. */
export async function scale(ctx: BenchContext): Promise<CaseResult> {
  const clusters: RedisCluster[] = [];
  const proxies: Server[] = [];
  try {
    const ks = keys('scale', N_KEYS);
    for (const n of SIZES) {
      const c = await startRedisCluster(n);
      clusters.push(c);
      pinRedis(c.nodes);
      const p = await startProxy(c.addressList);
      proxies.push(p);
      await seed(p.url, ks, VALUE);
    }
    const out: Measured[][] = SIZES.map(() => []);
    for (let run = 0; run < ctx.runs; run++) {
      for (let i = 0; i < SIZES.length; i++) {
        ctx.log(`case 3 ${SIZES[i]} nodes run ${run + 1}/${ctx.runs}`);
        out[i]!.push(
          await runLoad(
            {
              url: proxies[i]!.url,
              connections: ctx.connections,
              durationS: ctx.durationS,
              warmupS: ctx.warmupS,
              requests: [getSpec(ks)],
            },
            {
              watch: { server: [proxies[i]!.pid], redis: clusters[i]!.nodes.map((x) => x.pid!) },
              redis: clusters[i]!.nodes,
            },
          ),
        );
      }
    }
    const rows = SIZES.map((n, i) => rowOf(`dcache GET, ${n} nodes`, out[i]!, {}, median));
    return {
      id: 'scale',
      title: '3. GET throughput with 3 vs 32 Redis nodes',
      setup: `two dcache proxies (defaults: 2 connections per node), one over 3 and one over 32 redis-servers; ${N_KEYS.toLocaleString('en')} keys of 100 bytes in turn; ${ctx.connections} connections; runs interleaved`,
      rows,
      checks: [
        check('32 nodes ÷ 3 nodes', ratio(rows[1]!.value, rows[0]!.value), '>=', 0.9),
        check(
          '32 nodes ÷ 3 nodes, CPU capacity',
          ratio(rows[1]!.capacity ?? Number.NaN, rows[0]!.capacity ?? Number.NaN),
          '>=',
          0.9,
          'x',
          'informational',
        ),
      ],
      notes: [],
      chart: {
        throughput: { unit: 'req/s', bars: rows.map((r) => ({ label: r.label, value: r.value })) },
        p99: {
          unit: 'ms',
          bars: rows.map((r) => ({ label: r.label, value: r.p99 ?? Number.NaN })),
        },
      },
    };
  } finally {
    for (const p of proxies) await p.stop().catch(() => {});
    for (const c of clusters) await c.stopAll();
  }
}
