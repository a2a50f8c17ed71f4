/**
 * dcache benchmarks (issue 8). `npm run bench` (3 × 10 s runs per variant, medians) or
 * `npm run bench -- --quick` (1 × 2 s, a smoke check under a minute). `--only=single,batch`
 * picks cases; `--profile` records CPU profiles of the proxy instead (bench/results/profile-*.md).
 * Writes bench/results/<date>.json, latest.md and chart.svg (quick runs: quick-*.{json,md,svg}).
 */
import { cpus, loadavg } from 'node:os';
import { cleanupAll } from '@dcache/test-utils';
import { batchGet } from './cases/batch.js';
import { fault } from './cases/fault.js';
import { memory } from './cases/memory.js';
import { respCase } from './cases/resp.js';
import { ringLookup } from './cases/ring.js';
import { scale } from './cases/scale.js';
import { singleKey } from './cases/single.js';
import { stopLoadWorker } from './lib/load.js';
import { setProxyEnv } from './lib/procs.js';
import { profileAll } from './lib/profile.js';
import { writeReport } from './lib/report.js';
import type { BenchContext, CaseResult } from './lib/types.js';

const CASES: Record<string, (ctx: BenchContext) => Promise<CaseResult>> = {
  single: singleKey,
  batch: batchGet,
  scale,
  ring: ringLookup,
  memory,
  fault,
  resp: respCase,
};

function arg(name: string): string | undefined {
  const a = process.argv.find((x) => x === `--${name}` || x.startsWith(`--${name}=`));
  if (a === undefined) return undefined;
  return a.includes('=') ? a.slice(a.indexOf('=') + 1) : '';
}

async function main(): Promise<void> {
  const quick = arg('quick') !== undefined;
  const profile = arg('profile') !== undefined;
  const only = arg('only')?.split(',').filter(Boolean) ?? (profile ? [] : Object.keys(CASES));
  if (!profile)
    for (const o of only)
      if (!CASES[o]) throw new Error(`unknown case ${o}: ${Object.keys(CASES).join(', ')}`);
  const proxyEnv = Object.fromEntries(
    (arg('proxy-env') ?? '')
      .split(',')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
  setProxyEnv(proxyEnv);
  const t0 = Date.now();
  const log = (msg: string) =>
    console.log(
      `[${((Date.now() - t0) / 1_000).toFixed(1).padStart(6)}s load ${loadavg()[0]!.toFixed(2)}] ${msg}`,
    );
  const ctx: BenchContext = {
    quick,
    runs: Number(arg('runs') ?? (quick ? 1 : 3)),
    durationS: Number(arg('duration') ?? (quick ? 2 : 10)),
    warmupS: quick ? 0.5 : 3,
    connections: Number(arg('connections') ?? 64),
    ...(arg('servers') ? { servers: arg('servers')!.split(',') } : {}),
    log,
  };
  if (profile) {
    try {
      await profileAll(ctx, only);
    } finally {
      await stopLoadWorker();
      await cleanupAll();
    }
    return;
  }
  if (cpus().length < 2)
    log('warning: fewer than 2 cores: the server and the load generator share one');
  const loads: number[] = [loadavg()[0]!];
  const sampler = setInterval(() => loads.push(loadavg()[0]!), 5_000);
  const results: CaseResult[] = [];
  try {
    for (const id of only) {
      log(`case ${id}`);
      results.push(await CASES[id]!(ctx));
    }
  } finally {
    clearInterval(sampler);
    await stopLoadWorker();
    await cleanupAll();
  }
  loads.push(loadavg()[0]!);
  // More runs than the default still make a full report; fewer cases, servers or other settings do not.
  const partial =
    !quick &&
    (ctx.runs < 3 ||
      ['only', 'servers', 'duration', 'connections', 'proxy-env'].some(
        (o) => arg(o) !== undefined,
      ));
  const files = writeReport(results, {
    quick,
    partial,
    ctx,
    loads,
    startedAt: new Date(t0),
    seconds: (Date.now() - t0) / 1_000,
    command: `npm run bench --${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
  });
  log(`done: ${files.join(', ')}`);
}

main().then(
  () => process.exit(0),
  async (e: unknown) => {
    console.error(e);
    await cleanupAll().catch(() => {});
    process.exit(1);
  },
);
