/**
 * An older proxy build against the current one (and the minimal server), in interleaved rounds:
 * GET and PUT over one Redis, batch get of 100 keys over 8. Reports req/s and CPU µs per
 * response. Build the older proxy outside the working tree first, e.g. for commit C:
 *   mkdir -p bench/.ab/before && git archive C packages/proxy | tar -x -C bench/.ab/before
 *   (cd bench/.ab/before/packages/proxy && sed -i 's#"../../tsconfig.base.json"#"../../../../../tsconfig.base.json"#' tsconfig.build.json && ../../../../../node_modules/.bin/tsc -p tsconfig.build.json)
 * then `npx tsx bench/before-after.ts C [rounds]` (writes bench/results/before-after.md).
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupAll, startRedis, startRedisCluster } from '@dcache/test-utils';
import { batchGetSpec, getSpec, keys, putSpec, VALUE } from './cases/data.js';
import { runLoad, stopLoadWorker } from './lib/load.js';
import type { RequestSpec } from './lib/load-spec.js';
import { PROXY_MAIN, pinRedis, type Server, seed, startMinimal, startProxy } from './lib/procs.js';
import { fmt, median } from './lib/stats.js';

const here = dirname(fileURLToPath(import.meta.url));
const BEFORE = join(here, '.ab', 'before', 'packages', 'proxy', 'dist', 'main.js');

/** Interleaved rounds over `servers`; one table line per server. */
async function compare(
  what: string,
  servers: readonly Server[],
  spec: RequestSpec,
  rounds: number,
  unit: string,
): Promise<string[]> {
  const us: Record<string, number[]> = {};
  const rps: Record<string, number[]> = {};
  for (let i = 0; i < rounds; i++)
    for (const s of servers) {
      const m = await runLoad(
        { url: s.url, connections: 64, durationS: 5, warmupS: 2, requests: [spec] },
        { watch: { server: [s.pid] } },
      );
      us[s.name] = [...(us[s.name] ?? []), ((m.cpu.server ?? Number.NaN) * 10_000) / m.rps];
      rps[s.name] = [...(rps[s.name] ?? []), m.rps];
    }
  return servers.map(
    (s) =>
      `| ${what} | ${s.name} | ${fmt(median(rps[s.name]!))} ${unit} | ${fmt(median(us[s.name]!))} |`,
  );
}

async function main(): Promise<void> {
  const commit = process.argv[2] ?? '(unnamed)';
  const rounds = Number(process.argv[3] ?? 5);
  const lines: string[] = [];
  const one = await startRedis();
  pinRedis([one]);
  let servers: Server[] = [];
  try {
    servers = [
      await startProxy(one.address, { name: `before (${commit})`, main: BEFORE }),
      await startProxy(one.address, { name: 'after (working tree)', main: PROXY_MAIN }),
      await startMinimal(one.address),
    ];
    const ks = keys('ba', 1_000);
    await seed(servers[1]!.url, ks, VALUE);
    lines.push(...(await compare('GET, 1 node', servers, getSpec(ks), rounds, 'req/s')));
    lines.push(
      ...(await compare('PUT, 1 node', servers, putSpec(keys('bap', 1_000)), rounds, 'req/s')),
    );
  } finally {
    for (const s of servers) await s.stop().catch(() => {});
    await one.close();
  }
  const eight = await startRedisCluster(8);
  pinRedis(eight.nodes);
  servers = [];
  try {
    servers = [
      await startProxy(eight.addressList, { name: `before (${commit})`, main: BEFORE }),
      await startProxy(eight.addressList, { name: 'after (working tree)', main: PROXY_MAIN }),
    ];
    const ks = keys('bb', 2_000);
    await seed(servers[1]!.url, ks, VALUE);
    lines.push(
      ...(await compare(
        'batch get of 100 keys, 8 nodes',
        servers,
        batchGetSpec(ks, 100, 64),
        rounds,
        'calls/s',
      )),
    );
  } finally {
    for (const s of servers) await s.stop().catch(() => {});
    await eight.stopAll();
    await stopLoadWorker();
    await cleanupAll();
  }
  const text = [
    '# Proxy before and after the hot-path work',
    '',
    `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cpus()[0]?.model} (${cpus().length} cores), Node ${process.version}, load average at the end ${loadavg()[0]!.toFixed(2)}. ` +
      `Median of ${rounds} interleaved rounds of 5 s (after 2 s warm-up), 64 connections; proxy pinned to core 0 with its Redis, autocannon on core 1. ` +
      `Command: \`npx tsx bench/before-after.ts ${commit} ${rounds}\`. "before" is the proxy at commit ${commit}; other changes landed in between too (e.g. more hooks), so the difference is the net effect.`,
    '',
    '| load | server | median rate | proxy CPU µs per response |',
    '|---|---|---:|---:|',
    ...lines,
    '',
  ].join('\n');
  writeFileSync(join(here, 'results', 'before-after.md'), text);
  console.log(text);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
