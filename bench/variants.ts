/**
 * The proxy under different settings, side by side with the minimal server, in interleaved
 * rounds over one Redis: req/s and proxy CPU µs per response (the figure least disturbed by
 * other work on a shared machine). Each variant is `name=ENV=value,ENV=value` (or `name=` for
 * the defaults); `cut=a+b` in it starts the proxy with startServer's benchmark-only `benchCut`
 * option (bench/lib/cut-proxy.mjs: security-headers, ring-headers, request-id, http-metrics).
 * `minimal` is always added. Prints a markdown table; writes nothing. BENCH_SECONDS sets the
 * seconds per round (default 3).
 *   npx tsx bench/variants.ts get 5 default= fastify=DC_SERVER_FAST_PATH=false bare=cut=security-headers+http-metrics
 */
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { cleanupAll, startRedis } from '@dcache/test-utils';
import { getSpec, keys, putSpec, VALUE } from './cases/data.js';
import { runLoad, stopLoadWorker } from './lib/load.js';
import { pinRedis, type Server, seed, startMinimal, startProxy } from './lib/procs.js';
import { fmt, median } from './lib/stats.js';

const CUT_PROXY = fileURLToPath(new URL('./lib/cut-proxy.mjs', import.meta.url));

/** `name=A=1,B=2,cut=x+y` → the variant's name, environment and benchmark cuts. */
function parseVariant(arg: string): { name: string; env: Record<string, string>; cut: string[] } {
  const i = arg.indexOf('=');
  if (i <= 0) throw new Error(`variant "${arg}" is not name=ENV=value,...`);
  const env: Record<string, string> = {};
  for (const kv of arg
    .slice(i + 1)
    .split(',')
    .filter(Boolean)) {
    const j = kv.indexOf('=');
    if (j <= 0) throw new Error(`"${kv}" in variant "${arg}" is not ENV=value`);
    env[kv.slice(0, j)] = kv.slice(j + 1);
  }
  const cut = (env.cut ?? '').split('+').filter(Boolean);
  delete env.cut;
  return { name: arg.slice(0, i), env, cut };
}

async function main(): Promise<void> {
  const [op = 'get', roundsArg = '5', ...rest] = process.argv.slice(2);
  const seconds = Number(process.env.BENCH_SECONDS ?? 3);
  if (op !== 'get' && op !== 'put') throw new Error('first argument: get or put');
  const rounds = Number(roundsArg);
  const variants = (rest.length > 0 ? rest : ['default=']).map(parseVariant);
  const redis = await startRedis();
  pinRedis([redis]);
  const servers: Server[] = [];
  try {
    for (const v of variants) {
      const s = await startProxy(
        redis.address,
        v.cut.length > 0
          ? { main: CUT_PROXY, env: { ...v.env, DCACHE_BENCH_CUT: v.cut.join(',') } }
          : { env: v.env },
      );
      servers.push({ ...s, name: v.name });
    }
    servers.push(await startMinimal(redis.address));
    const ks = keys('var', 1_000);
    await seed(servers[0]!.url, ks, VALUE);
    const spec = op === 'get' ? getSpec(ks) : putSpec(keys('varp', 1_000));
    const us: Record<string, number[]> = {};
    const rps: Record<string, number[]> = {};
    for (let r = 0; r < rounds; r++)
      for (const s of servers) {
        const m = await runLoad(
          { url: s.url, connections: 64, durationS: seconds, warmupS: 1, requests: [spec] },
          { watch: { server: [s.pid] } },
        );
        us[s.name] = [...(us[s.name] ?? []), ((m.cpu.server ?? Number.NaN) * 10_000) / m.rps];
        rps[s.name] = [...(rps[s.name] ?? []), m.rps];
        process.stderr.write(`round ${r + 1}/${rounds} ${s.name}: ${fmt(m.rps)} req/s\n`);
      }
    const min = median(us.minimal!);
    console.log(
      `${op.toUpperCase()}, ${rounds} interleaved rounds of ${seconds} s, ${cpus()[0]?.model}, Node ${process.version}, load ${loadavg()[0]!.toFixed(2)}\n`,
    );
    console.log('| server | req/s, median | CPU µs/response, median | each round | vs minimal |');
    console.log('|---|---:|---:|---|---:|');
    for (const s of servers) {
      const u = median(us[s.name]!);
      console.log(
        `| ${s.name} | ${fmt(median(rps[s.name]!))} | ${fmt(u)} | ${us[s.name]!.map((x) => fmt(x)).join(' / ')} | ${(min / u).toFixed(2)}× |`,
      );
    }
  } finally {
    for (const s of servers) await s.stop().catch(() => {});
    await redis.close();
    await stopLoadWorker();
    await cleanupAll();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
