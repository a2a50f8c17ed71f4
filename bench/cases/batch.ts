/** Case 2: batch GET of 100 keys over 8 nodes vs single GETs, both through dcache. */
import { startRedisCluster } from '@dcache/test-utils';
import { type Measured, runLoad } from '../lib/load.js';
import { pinRedis, seed, startProxy } from '../lib/procs.js';
import { median, ratio } from '../lib/stats.js';
import { type BenchContext, type CaseResult, check, rowOf } from '../lib/types.js';
import { batchGetSpec, getSpec, keys, VALUE } from './data.js';

const NODES = 8;
const N_KEYS = 2_000;
const BATCH = 100;

/** Run case 2. */
export async function batchGet(ctx: BenchContext): Promise<CaseResult> {
  const redis = await startRedisCluster(NODES);
  pinRedis(redis.nodes);
  const proxy = await startProxy(redis.addressList);
  try {
    const ks = keys('batch', N_KEYS);
    await seed(proxy.url, ks, VALUE);
    const batchSpec = batchGetSpec(ks, BATCH, 64);
    const probe = await fetch(`${proxy.url}/api/v1/cache/batch/get`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: batchSpec.bodies![0]!,
    });
    const body = (await probe.json()) as { items: Record<string, unknown>; missing: string[] };
    if (probe.status !== 200 || Object.keys(body.items).length !== BATCH)
      throw new Error(`batch get probe: ${probe.status} ${JSON.stringify(body).slice(0, 200)}`);
    const redisPids = redis.nodes.map((n) => n.pid!);
    const batch: Measured[] = [];
    const single: Measured[] = [];
    for (let run = 0; run < ctx.runs; run++) {
      for (const [name, spec, out] of [
        ['batch-100', batchSpec, batch],
        ['single', getSpec(ks), single],
      ] as const) {
        ctx.log(`case 2 ${name} run ${run + 1}/${ctx.runs}`);
        out.push(
          await runLoad(
            {
              url: proxy.url,
              connections: ctx.connections,
              durationS: ctx.durationS,
              warmupS: ctx.warmupS,
              requests: [spec],
            },
            { watch: { server: [proxy.pid], redis: redisPids }, redis: redis.nodes },
          ),
        );
      }
    }
    const rows = [
      rowOf(`dcache batch get of ${BATCH} keys`, batch, { unit: 'keys/s', perCall: BATCH }, median),
      rowOf('dcache single GET', single, { unit: 'keys/s' }, median),
    ];
    rows[0]!.note = `${Math.round(rows[0]!.value / BATCH).toLocaleString('en')} calls/s; latency columns are per call of ${BATCH} keys`;
    return {
      id: 'batch',
      title: `2. Batch get of ${BATCH} keys over ${NODES} nodes vs single GETs`,
      setup: `${NODES} redis-servers, one dcache; ${N_KEYS.toLocaleString('en')} keys of 100 bytes; 64 different batch bodies of ${BATCH} distinct random keys; ${ctx.connections} connections for both`,
      rows,
      checks: [
        check(
          'batch-100 keys/s ÷ single-GET keys/s',
          ratio(rows[0]!.value, rows[1]!.value),
          '>=',
          15,
        ),
      ],
      notes: [],
      chart: {
        throughput: {
          unit: 'keys/s',
          bars: [
            { label: 'dcache batch-100', value: rows[0]!.value },
            { label: 'dcache single GET', value: rows[1]!.value },
          ],
        },
        p99: {
          unit: 'ms per call',
          bars: [
            { label: 'dcache batch-100', value: rows[0]!.p99 ?? Number.NaN },
            { label: 'dcache single GET', value: rows[1]!.p99 ?? Number.NaN },
          ],
        },
      },
    };
  } finally {
    await proxy.stop().catch(() => {});
    await redis.stopAll();
  }
}
