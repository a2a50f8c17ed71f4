/**
 * What each per-request feature of the proxy costs: the built proxy started with one feature cut
 * out (startServer's `benchCut` option, through bench/lib/cut-proxy.mjs), run against the same
 * Redis in interleaved rounds of GET or PUT load, proxy pinned to core 0 and autocannon to core
 * 1. Reports CPU µs per response (median and min over the rounds) beside the minimal node:http
 * server and a bare Fastify. The variants are experiments, never shipped. Run:
 * `npm run build && npx tsx bench/feature-costs.ts [get|put] [rounds] [seconds]`; writes
 * bench/results/feature-costs-<op>.md (a run shorter than the default 8 rounds of 3 s prints
 * its table and writes nothing).
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupAll, startRedis } from '@dcache/test-utils';
import { getSpec, keys, putSpec, VALUE } from './cases/data.js';
import { runLoad, stopLoadWorker } from './lib/load.js';
import {
  pinRedis,
  type Server,
  seed,
  startFastifyBaseline,
  startMinimal,
  startProxy,
} from './lib/procs.js';
import { fmt, median } from './lib/stats.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The proxy with `benchCut` from DCACHE_BENCH_CUT. */
const CUT_PROXY = join(here, 'lib', 'cut-proxy.mjs');

// Names of startServer's `benchCut` option (BENCH_CUTS in packages/proxy/src/app.ts); an unknown
// one stops the proxy at start.
const VARIANTS: Record<string, { describe: string; cut: string[] }> = {
  'no security headers': {
    describe: 'the 3 security headers',
    cut: ['security-headers'],
  },
  'no ring/request-id headers': {
    describe: 'x-ring-version, x-ring-checksum, x-request-id',
    cut: ['ring-headers', 'request-id'],
  },
  'no HTTP metrics': {
    describe: 'HTTP request metrics, in-flight gauge, fast-path counter',
    cut: ['http-metrics'],
  },
  'none of these': {
    describe: 'all three cuts together',
    cut: ['security-headers', 'ring-headers', 'request-id', 'http-metrics'],
  },
};

async function main(): Promise<void> {
  const op = process.argv[2] === 'put' ? 'put' : 'get';
  const rounds = Number(process.argv[3] ?? 8);
  const seconds = Number(process.argv[4] ?? 3);
  const redis = await startRedis();
  pinRedis([redis]);
  const servers: Server[] = [];
  try {
    servers.push(await startProxy(redis.address));
    for (const [name, v] of Object.entries(VARIANTS))
      servers.push(
        await startProxy(redis.address, {
          name,
          main: CUT_PROXY,
          env: { DCACHE_BENCH_CUT: v.cut.join(',') },
        }),
      );
    servers.push(await startMinimal(redis.address), await startFastifyBaseline(redis.address));
    const ks = keys('fc', 1_000);
    await seed(servers[0]!.url, ks, VALUE);
    const spec = op === 'get' ? getSpec(ks) : putSpec(keys('fcp', 1_000));
    const us: Record<string, number[]> = {};
    const rps: Record<string, number[]> = {};
    for (let r = 0; r < rounds; r++) {
      for (const s of servers) {
        const m = await runLoad(
          { url: s.url, connections: 64, durationS: seconds, warmupS: 1, requests: [spec] },
          { watch: { server: [s.pid] } },
        );
        us[s.name] = [...(us[s.name] ?? []), ((m.cpu.server ?? Number.NaN) * 10_000) / m.rps];
        rps[s.name] = [...(rps[s.name] ?? []), m.rps];
      }
      console.log(`round ${r + 1}/${rounds} done (load ${loadavg()[0]!.toFixed(2)})`);
    }
    const base = median(us.dcache!);
    const lines = [
      `# What each per-request feature costs (${op.toUpperCase()})`,
      '',
      `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cpus()[0]?.model} (${cpus().length} cores), Node ${process.version}, load average at the end ${loadavg()[0]!.toFixed(2)}. ` +
        `${rounds} interleaved rounds of ${seconds} s (after 1 s warm-up) per server, 64 connections, one Redis; server pinned to core 0, autocannon to core 1. ` +
        `Command: \`npx tsx bench/feature-costs.ts ${op} ${rounds} ${seconds}\`. The variants are the built proxy started with startServer's \`benchCut\` option (bench/lib/cut-proxy.mjs); they are measurements, not proposals.`,
      '',
      '| server | what is cut | CPU µs/response, median | min | saved vs dcache (median) | req/s, median |',
      '|---|---|---:|---:|---:|---:|',
    ];
    for (const s of servers) {
      const v = VARIANTS[s.name];
      const what = v
        ? v.describe
        : s.name === 'dcache'
          ? 'nothing (the proxy as built)'
          : s.name === 'minimal'
            ? 'reference: node:http + ioredis'
            : 'reference: bare Fastify + ioredis';
      const med = median(us[s.name]!);
      lines.push(
        `| ${s.name} | ${what} | ${fmt(med)} | ${fmt(Math.min(...us[s.name]!))} | ${fmt(base - med)} | ${fmt(median(rps[s.name]!))} |`,
      );
    }
    lines.push('');
    console.log(lines.join('\n'));
    if (rounds >= 8 && seconds >= 3) {
      const out = join(here, 'results', `feature-costs-${op}.md`);
      writeFileSync(out, `${lines.join('\n')}\n`);
      console.log(`written to ${out}`);
    }
  } finally {
    await stopLoadWorker();
    for (const s of servers) await s.stop().catch(() => {});
    await redis.close();
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
