/**
 * What each per-request feature of the proxy costs: copies of the built proxy with one feature
 * cut out (string patches on packages/proxy/dist, failing loudly when the code they target has
 * changed), run against the same Redis in interleaved rounds of GET or PUT load, proxy pinned to
 * core 0 and autocannon to core 1. Reports CPU µs per response (median and min over the rounds)
 * beside the minimal node:http server and a bare Fastify. The variants are experiments, never
 * shipped. Run: `npm run build && npx tsx bench/feature-costs.ts [get|put] [rounds]`; writes
 * bench/results/feature-costs-<op>.md.
 */
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupAll, startRedis } from '@dcache/test-utils';
import { getSpec, keys, putSpec, VALUE } from './cases/data.js';
import { runLoad, stopLoadWorker } from './lib/load.js';
import {
  PROXY_MAIN,
  pinRedis,
  type Server,
  seed,
  startFastifyBaseline,
  startMinimal,
  startProxy,
} from './lib/procs.js';
import { fmt, median } from './lib/stats.js';

const here = dirname(fileURLToPath(import.meta.url));
const DIST = dirname(PROXY_MAIN);
const WORK = join(here, '.ab');

/** A cut: file (relative to dist), the exact text, and what replaces it (default: nothing). */
type Patch = [file: string, text: string, by?: string];

// Single-key GET and PUT are served by the node:http fast path (fast-path.ts): the cuts target it.
// The fixed headers go in as one block of lines (`fixed`): the cuts empty its parts.
const SECURITY: Patch = [
  'fast-path.js',
  '    const securityLines = headerLines(security);',
  "    const securityLines = '';",
];
const RING_HEADERS: Patch[] = [
  ['fast-path.js', `        out.push('x-request-id', id);`],
  [
    'fast-path.js',
    `                bare = securityLines + headerLines(Object.entries(x));`,
    `                bare = securityLines;`,
  ],
];
const METRICS: Patch[] = [
  [
    'fast-path.js',
    `        inflight.inc();
        fastPath.inc();`,
  ],
  ['fast-path.js', `            record(method, status, (performance.now() - start) / 1_000);`],
  ['fast-path.js', `            inflight.dec();`],
  ['routes/cache.js', `                hitGet.inc();`],
  [
    'upstream/executor.js',
    `                this.timer(node, op).observe((performance.now() - start) / 1_000);`,
  ],
];
const DEADLINE: Patch = [
  'upstream/executor.js',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the compiled code's own template literal
  'const deadline = setTimeout(() => fail(new Error(`Command timed out after ${this.deadlineMs} ms`)), this.deadlineMs);',
  'const deadline = undefined;',
];

const VARIANTS: Record<string, { describe: string; patches: Patch[] }> = {
  'no security headers': { describe: 'the 11 helmet headers', patches: [SECURITY] },
  'no ring/request-id headers': {
    describe: 'x-ring-version, x-ring-checksum, x-request-id',
    patches: RING_HEADERS,
  },
  'no metrics': {
    describe:
      'HTTP request metrics, in-flight gauge, fast-path and hit counters, Redis command histogram',
    patches: METRICS,
  },
  'no per-call deadline': {
    describe: "the executor's deadline timer per Redis call",
    patches: [DEADLINE],
  },
  'none of these': {
    describe: 'all four cuts together',
    patches: [SECURITY, ...RING_HEADERS, ...METRICS, DEADLINE],
  },
};

function build(name: string, v: { patches: Patch[] }): string {
  const dir = join(WORK, name.replace(/[^a-z]+/g, '-'));
  rmSync(dir, { recursive: true, force: true });
  cpSync(DIST, dir, { recursive: true });
  for (const [file, text, by = ''] of v.patches) {
    const p = join(dir, file);
    const s = readFileSync(p, 'utf8');
    if (!s.includes(text)) throw new Error(`${name}: ${file} no longer contains:\n${text}`);
    writeFileSync(p, s.replace(text, by));
  }
  return join(dir, 'main.js');
}

async function main(): Promise<void> {
  const op = process.argv[2] === 'put' ? 'put' : 'get';
  const rounds = Number(process.argv[3] ?? 8);
  mkdirSync(WORK, { recursive: true });
  const redis = await startRedis();
  pinRedis([redis]);
  const servers: Server[] = [];
  try {
    servers.push(await startProxy(redis.address));
    for (const [name, v] of Object.entries(VARIANTS))
      servers.push(await startProxy(redis.address, { name, main: build(name, v) }));
    servers.push(await startMinimal(redis.address), await startFastifyBaseline(redis.address));
    const ks = keys('fc', 1_000);
    await seed(servers[0]!.url, ks, VALUE);
    const spec = op === 'get' ? getSpec(ks) : putSpec(keys('fcp', 1_000));
    const us: Record<string, number[]> = {};
    const rps: Record<string, number[]> = {};
    for (let r = 0; r < rounds; r++) {
      for (const s of servers) {
        const m = await runLoad(
          { url: s.url, connections: 64, durationS: 3, warmupS: 1, requests: [spec] },
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
        `${rounds} interleaved rounds of 3 s (after 1 s warm-up) per server, 64 connections, one Redis; server pinned to core 0, autocannon to core 1. ` +
        `Command: \`npx tsx bench/feature-costs.ts ${op} ${rounds}\`. The variants are copies of packages/proxy/dist with code cut out (see the script); they are measurements, not proposals.`,
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
    const out = join(here, 'results', `feature-costs-${op}.md`);
    writeFileSync(out, `${lines.join('\n')}\n`);
    console.log(lines.join('\n'));
    console.log(`written to ${out}`);
  } finally {
    await stopLoadWorker();
    for (const s of servers) await s.stop().catch(() => {});
    await redis.close();
    await cleanupAll();
    rmSync(WORK, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
