/**
 * CPU cost of the batch splitter alone: `CacheService.batchGet` of 100 keys over 8 nodes against
 * an executor that answers at once from memory (no Redis, no HTTP), so what is measured is the
 * routing, split, merge, budget and metrics of one batch. Compares the working tree with another
 * cache-service source (e.g. one extracted from an older commit next to the current one), after
 * `npm run build` (the current one is the built @dcache/proxy):
 *   git show C:packages/proxy/src/cache-service.ts > packages/proxy/src/cache-service-before.ts
 *   npx tsx bench/batch-split.ts packages/proxy/src/cache-service-before.ts [seconds]
 * Instructions: run `--only=before|after --warmup=W --count=N` under valgrind's callgrind
 * twice, with N and with 0, and divide the difference by N (start-up and warm-up cancel out).
 * Rounds alternate between the two; prints batches and keys per CPU second of each (median of
 * 5 rounds, or --rounds=N): CPU time, not wall time, so other processes on the cores disturb it less.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CacheService, createMetrics, MembershipHolder, Router, seedDoc } from '@dcache/proxy';

type Service = { batchGet(keys: readonly string[], limits?: unknown): Promise<unknown> };
type ServiceClass = new (d: unknown) => Service;

const NODES = Array.from({ length: 8 }, (_, i) => `127.0.0.1:${7000 + i}`);
const VALUE = JSON.stringify({ v: 'x'.repeat(90) });
const KEYS = Array.from({ length: 10_000 }, (_, i) => `bench:key:${i}`);
const LIMITS = { maxBytes: 8 * 1024 * 1024, chunkKeys: 256 };

function service(Cls: ServiceClass): Service {
  const holder = new MembershipHolder(seedDoc(NODES), { hash: 'murmur' });
  const router = new Router(holder, 1, 0);
  const conn = {
    mget: (ks: string[]) => Promise.resolve(ks.map(() => VALUE)),
    get: () => Promise.resolve(VALUE),
  };
  const exec = { run: (_n: string, _op: string, fn: (c: unknown) => unknown) => fn(conn) };
  const log = { warn() {}, info() {} };
  return new Cls({
    router,
    exec,
    // No node is away, so nothing is journalled.
    journal: { record() {} },
    metrics: createMetrics(),
    log,
  });
}

/** Batches per second of CPU time (user + system) over about `ms` of wall time. */
async function round(svc: Service, ms: number): Promise<number> {
  const end = performance.now() + ms;
  const cpu0 = process.cpuUsage();
  let n = 0;
  let at = 0;
  while (performance.now() < end) {
    for (let j = 0; j < 50; j++) {
      const keys = KEYS.slice(at, at + 100);
      at = (at + 100) % (KEYS.length - 100);
      await svc.batchGet(keys, LIMITS);
      n++;
    }
  }
  const cpu = process.cpuUsage(cpu0);
  return (n * 1e6) / (cpu.user + cpu.system);
}

/** `--count=N --warmup=W --only=before|after`: run exactly W + N batches of one and exit. */
async function fixed(svc: Service, warmup: number, count: number): Promise<void> {
  let at = 0;
  for (let i = 0; i < warmup + count; i++) {
    await svc.batchGet(KEYS.slice(at, at + 100), LIMITS);
    at = (at + 100) % (KEYS.length - 100);
  }
}

async function main(): Promise<void> {
  const flags = new Map(
    process.argv
      .slice(2)
      .filter((a) => a.startsWith('--'))
      .map((a) => a.slice(2).split('=') as [string, string]),
  );
  const [other, secs] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const seconds = Number(secs ?? 2);
  if (!other) throw new Error('usage: tsx bench/batch-split.ts <other cache-service.ts> [seconds]');
  const then = (await import(pathToFileURL(resolve(other)).href)).CacheService;
  const svcs: [string, Service][] = [
    ['before', service(then as ServiceClass)],
    ['after', service(CacheService as unknown as ServiceClass)],
  ];
  const only = flags.get('only');
  if (only) {
    const svc = svcs.find(([name]) => name === only)?.[1];
    if (!svc) throw new Error('--only=before or --only=after');
    await fixed(svc, Number(flags.get('warmup') ?? 0), Number(flags.get('count') ?? 0));
    return;
  }
  for (const [, s] of svcs) await round(s, 300);
  const rates: Record<string, number[]> = { before: [], after: [] };
  const rounds = Number(flags.get('rounds') ?? 5);
  for (let r = 0; r < rounds; r++)
    for (const [name, s] of svcs) rates[name]?.push(await round(s, (seconds * 1000) / rounds));
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? 0;
  for (const [name] of svcs) {
    const m = med(rates[name] ?? []);
    console.log(
      `${name}: ${Math.round(m)} batches/CPU s, ${Math.round(m * 100)} keys/CPU s (rounds: ${rates[name]?.map(Math.round).join(', ')})`,
    );
  }
  const b = med(rates.before ?? []);
  const a = med(rates.after ?? []);
  console.log(`after/before: ${(a / b).toFixed(2)}x`);
}

await main();
