/**
 * `npm run bench -- --profile [--only=get,put,batch,get32]`: runs the proxy under `--cpu-prof`
 * through one load per scenario and writes bench/results/profile-<scenario>.md (top functions by
 * self time, time by module, inclusive time of dcache's own functions). The .cpuprofile files
 * land next to them (git-ignored) for a flame graph in Chrome DevTools or speedscope.
 */
import {
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedisCluster } from '@dcache/test-utils';
import { batchGetSpec, getSpec, keys, putSpec, VALUE } from '../cases/data.js';
import { runLoad } from './load.js';
import type { RequestSpec } from './load-spec.js';
import { pinRedis, ROOT, seed, startProxy } from './procs.js';
import { fmt } from './stats.js';
import type { BenchContext } from './types.js';

const RESULTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Per-function self and inclusive time (µs) of a V8 CPU profile. */
export interface ProfileSummary {
  totalUs: number;
  functions: { name: string; where: string; selfUs: number; totalUs: number }[];
  modules: { module: string; selfUs: number }[];
}

function where(url: string, line: number): string {
  if (!url) return '';
  let u = url.replace(/^file:\/\//, '');
  if (u.startsWith(ROOT)) u = u.slice(ROOT.length + 1);
  u = u.replace(/^node_modules\//, '').replace(/^packages\/proxy\/dist\//, 'proxy/');
  return `${u}:${line + 1}`;
}

function moduleOf(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const u = url.replace(/^file:\/\//, '');
  if (u.startsWith('node:')) return 'node: internals';
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (u.includes('packages/proxy/')) return '@dcache/proxy';
  if (u.includes('packages/ring/')) return '@dcache/ring';
  return u;
}

/** Self and inclusive time per function and self time per module. */
export function summarize(p: CpuProfile): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (id: number) => {
    const f = byId.get(id)!.callFrame;
    return `${f.functionName || '(anonymous)'}\u0000${where(f.url, f.lineNumber)}`;
  };
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const mods = new Map<string, number>();
  let sum = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    const dt = p.timeDeltas[i] ?? 0;
    sum += dt;
    const k = key(id);
    self.set(k, (self.get(k) ?? 0) + dt);
    const f = byId.get(id)!.callFrame;
    const m = moduleOf(f.url, f.functionName);
    mods.set(m, (mods.get(m) ?? 0) + dt);
    const seen = new Set<string>();
    for (
      let cur: number | undefined = id, guard = 0;
      cur !== undefined && guard < 10_000;
      guard++
    ) {
      const ck = key(cur);
      if (!seen.has(ck)) {
        seen.add(ck);
        total.set(ck, (total.get(ck) ?? 0) + dt);
      }
      cur = parent.get(cur);
    }
  }
  const functions = [...total.keys()].map((k) => {
    const [name, w] = k.split('\u0000') as [string, string];
    return { name, where: w, selfUs: self.get(k) ?? 0, totalUs: total.get(k) ?? 0 };
  });
  return {
    totalUs: sum,
    functions,
    modules: [...mods]
      .map(([module, selfUs]) => ({ module, selfUs }))
      .sort((a, b) => b.selfUs - a.selfUs),
  };
}

/** The markdown tables of a summary. */
export function profileMarkdown(title: string, s: ProfileSummary, intro: string, top = 30): string {
  const pct = (us: number) => `${((100 * us) / s.totalUs).toFixed(1)}%`;
  const busy = s.totalUs - (s.modules.find((m) => m.module === '(idle)')?.selfUs ?? 0);
  const out = [
    `# CPU profile: ${title}`,
    '',
    intro,
    '',
    `Sampled ${fmt(s.totalUs / 1e6)} s; not idle ${pct(busy)}.`,
    '',
  ];
  out.push(
    `## Top ${top} functions by self time`,
    '',
    '| self | self % | total % | function | where |',
    '|---:|---:|---:|---|---|',
  );
  for (const f of [...s.functions].sort((a, b) => b.selfUs - a.selfUs).slice(0, top))
    out.push(
      `| ${fmt(f.selfUs / 1_000)} ms | ${pct(f.selfUs)} | ${pct(f.totalUs)} | \`${f.name}\` | ${f.where} |`,
    );
  out.push('', '## Self time by module', '', '| module | self % |', '|---|---:|');
  for (const m of s.modules.slice(0, 20)) out.push(`| ${m.module} | ${pct(m.selfUs)} |`);
  out.push(
    '',
    '## dcache functions by inclusive time',
    '',
    '| total % | self % | function | where |',
    '|---:|---:|---|---|',
  );
  for (const f of s.functions
    .filter((x) => x.where.startsWith('proxy/'))
    .sort((a, b) => b.totalUs - a.totalUs)
    .slice(0, 20))
    out.push(`| ${pct(f.totalUs)} | ${pct(f.selfUs)} | \`${f.name}\` | ${f.where} |`);
  out.push('');
  return `${out.join('\n')}\n`;
}

interface Scenario {
  nodes: number;
  describe: string;
  spec: (ks: string[]) => RequestSpec;
}

const SCENARIOS: Record<string, Scenario> = {
  get: { nodes: 1, describe: 'GET of a 100-byte value, 1 node', spec: (ks) => getSpec(ks) },
  put: {
    nodes: 1,
    describe: 'PUT of a 100-byte value, 1 node',
    spec: () => putSpec(keys('put', 1_000)),
  },
  batch: {
    nodes: 8,
    describe: 'batch get of 100 keys, 8 nodes',
    spec: (ks) => batchGetSpec(ks, 100, 64),
  },
  get32: { nodes: 32, describe: 'GET of a 100-byte value, 32 nodes', spec: (ks) => getSpec(ks) },
};

/** Profile each scenario named in `only` (or all). */
export async function profileAll(ctx: BenchContext, only: readonly string[]): Promise<void> {
  for (const o of only)
    if (!SCENARIOS[o])
      throw new Error(`unknown profile ${o}: ${Object.keys(SCENARIOS).join(', ')}`);
  for (const name of only.length > 0 ? only : Object.keys(SCENARIOS)) {
    const sc = SCENARIOS[name]!;
    const dir = mkdtempSync(join(tmpdir(), 'dcache-prof-'));
    const redis = await startRedisCluster(sc.nodes);
    pinRedis(redis.nodes);
    const proxy = await startProxy(redis.addressList, { profileDir: dir });
    try {
      const ks = keys('prof', 5_000);
      await seed(proxy.url, ks, VALUE);
      ctx.log(`profile ${name}: ${sc.describe}`);
      const m = await runLoad(
        {
          url: proxy.url,
          connections: ctx.connections,
          durationS: ctx.durationS,
          warmupS: ctx.warmupS,
          requests: [sc.spec(ks)],
        },
        { watch: { server: [proxy.pid] } },
      );
      await proxy.stop();
      const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
      if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
      copyFileSync(join(dir, file), join(RESULTS, `profile-${name}.cpuprofile`));
      const s = summarize(JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile);
      const intro =
        `${sc.describe}; ${ctx.connections} connections, ${ctx.durationS} s after ${ctx.warmupS} s warm-up, proxy pinned to core 0 under \`--cpu-prof\` ` +
        `(the profile covers the whole process life, start-up and seeding included). Throughput under the profiler: ${fmt(m.rps)} req/s, ` +
        `p99 ${fmt(m.latency.p99)} ms, proxy CPU ${fmt(m.cpu.server ?? Number.NaN)}% of a core (${fmt(((m.cpu.server ?? Number.NaN) * 10_000) / m.rps)} µs per response), load average ${loadavg()[0]!.toFixed(2)}. ` +
        'Shares are valid under load; absolute times are not. Reproduce: `npm run bench -- --profile --only=' +
        name +
        '`.';
      writeFileSync(join(RESULTS, `profile-${name}.md`), profileMarkdown(sc.describe, s, intro));
      ctx.log(`wrote results/profile-${name}.md`);
    } finally {
      await proxy.stop().catch(() => {});
      await redis.stopAll();
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
