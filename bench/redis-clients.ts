/**
 * Which Redis client carries dcache's data commands (issue 16): the minimal node:http server
 * (bench/baselines/minimal-server.ts) with ioredis (auto-pipelined), node-redis and dcache's own
 * RESP connection, plus the constant-body ceiling, GET and PUT of a 100-byte value against one
 * redis-server. Servers and redis-server pinned to core 0, the load generator to core 1, rounds
 * interleaved so drift hits every client alike.
 *
 *   npx tsx bench/redis-clients.ts [--runs=3] [--duration=5] [--connections=50]
 *
 * Writes bench/results/redis-clients.md (medians, each run, p99, server CPU µs per response).
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { startRedis } from '@dcache/test-utils';
import { getSpec, keys, putSpec, VALUE } from './cases/data.js';
import { type Measured, runLoad, stopLoadWorker } from './lib/load.js';
import { pinRedis, ROOT, type Server, startMinimalWith } from './lib/procs.js';
import { median } from './lib/stats.js';

const arg = (name: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const RUNS = Number(arg('runs') ?? 3);
const DURATION_S = Number(arg('duration') ?? 5);
const CONNECTIONS = Number(arg('connections') ?? 50);
const CLIENTS = ['ioredis', 'node-redis', 'dcache'] as const;

async function main(): Promise<void> {
  const redis = await startRedis();
  pinRedis([redis]);
  const servers: Server[] = [];
  try {
    for (const c of CLIENTS) servers.push(await startMinimalWith(c, redis.address));
    const getKeys = keys('get', 1_000);
    const putKeys = keys('put', 1_000);
    // The minimal server has no batch route: seed with single PUTs.
    for (const k of getKeys) {
      const r = await fetch(`${servers[0]!.url}/api/v1/cache/${k}`, {
        method: 'PUT',
        body: JSON.stringify({ value: VALUE }),
      });
      if (r.status !== 200) throw new Error(`seeding ${k}: ${r.status} ${await r.text()}`);
    }
    const rows: Record<string, Measured[]> = {};
    const variants: { name: string; server: Server; op: 'get' | 'put' | 'static' }[] = [];
    for (const op of ['get', 'put'] as const)
      for (const s of servers)
        variants.push({ name: `${s.name} ${op.toUpperCase()}`, server: s, op });
    variants.push({ name: 'node:http constant body (ceiling)', server: servers[0]!, op: 'static' });
    for (let run = 0; run < RUNS; run++) {
      for (const v of variants) {
        console.log(`${v.name}: run ${run + 1}/${RUNS}`);
        const spec =
          v.op === 'get'
            ? getSpec(getKeys)
            : v.op === 'put'
              ? putSpec(putKeys)
              : { method: 'GET' as const, paths: ['/static'] };
        const m = await runLoad(
          {
            url: v.server.url,
            connections: CONNECTIONS,
            durationS: DURATION_S,
            warmupS: 1,
            requests: [spec],
          },
          { watch: { server: [v.server.pid] }, redis: [redis] },
        );
        rows[v.name] = [...(rows[v.name] ?? []), m];
      }
    }
    const lines = [
      '# Redis clients side by side (issue 16)',
      '',
      `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC · ${cpus()[0]?.model} · ${cpus().length} cores · Node ${process.version} · load average at the end ${loadavg()[0]!.toFixed(2)}`,
      '',
      `Command: \`npx tsx bench/redis-clients.ts --runs=${RUNS} --duration=${DURATION_S} --connections=${CONNECTIONS}\`. The same node:http server (bench/baselines/minimal-server.ts) with each client; servers and redis-server on core 0, autocannon on core 1; ${RUNS} interleaved rounds of ${DURATION_S} s; GET of 1,000 keys holding 100-byte values, PUT of the same size.`,
      '',
      '| variant | median req/s | each run | vs ioredis | p99 ms (median) | server CPU µs/resp (median) | Redis cmds/read |',
      '|---|---:|---|---:|---:|---:|---:|',
    ];
    const base = (op: string) => median((rows[`minimal-ioredis ${op}`] ?? []).map((m) => m.rps));
    for (const [name, ms] of Object.entries(rows)) {
      const rps = median(ms.map((m) => m.rps));
      const op = name.endsWith('PUT') ? 'PUT' : 'GET';
      // CPU time of the server process per response, in µs.
      const cpu = median(ms.map((m) => ((m.cpu.server ?? Number.NaN) * 1e4) / m.rps));
      lines.push(
        `| ${name} | ${Math.round(rps).toLocaleString('en')} | ${ms.map((m) => Math.round(m.rps).toLocaleString('en')).join(' / ')} | ${(rps / base(op)).toFixed(2)}× | ${median(ms.map((m) => m.latency.p99)).toFixed(2)} | ${Number.isFinite(cpu) ? cpu.toFixed(1) : 'n/a'} | ${median(ms.map((m) => m.redisCmdsPerRead ?? Number.NaN)).toFixed(1)} |`,
      );
    }
    const out = join(ROOT, 'bench', 'results', 'redis-clients.md');
    writeFileSync(out, `${lines.join('\n')}\n`);
    console.log(lines.join('\n'));
    console.log(`wrote ${out}`);
  } finally {
    for (const s of servers) await s.stop();
    await stopLoadWorker();
    await redis.close();
  }
}

await main();
