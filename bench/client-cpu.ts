/**
 * Client-side CPU per GET of each Redis client, without HTTP: 50 concurrent callers issue GETs of
 * a 100-byte value against one redis-server; the process's own CPU time (user + system) per
 * completed GET is reported, in rounds interleaved across clients. CPU time, unlike req/s, moves
 * little with other load on the machine.  npx tsx bench/client-cpu.ts [--gets=200000] [--rounds=3]
 */
import { RedisConnection } from '@dcache/proxy';
import { startRedis } from '@dcache/test-utils';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { median } from './lib/stats.js';

const arg = (name: string) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const GETS = Number(arg('gets') ?? 200_000);
const ROUNDS = Number(arg('rounds') ?? 3);
const CALLERS = 50;

type Get = (k: string) => Promise<unknown>;

async function measure(get: Get): Promise<{ usPerGet: number; wallMs: number }> {
  let left = GETS;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CALLERS }, async (_, i) => {
      while (left-- > 0) await get(`k:${(left + i) % 1000}`);
    }),
  );
  const c = process.cpuUsage(c0);
  return { usPerGet: (c.user + c.system) / GETS, wallMs: performance.now() - t0 };
}

const redis = await startRedis();
const io = new Redis({ host: redis.host, port: redis.port, enableAutoPipelining: true });
const nr = createClient({ socket: { host: redis.host, port: redis.port } });
await nr.connect();
const dc = new RedisConnection({ host: redis.host, port: redis.port, connectTimeout: 5_000 });
await new Promise((r) => dc.once('ready', r));
for (let i = 0; i < 1000; i++) await io.set(`k:${i}`, JSON.stringify('v'.repeat(98)));
const clients: [string, Get][] = [
  ['ioredis', (k) => io.get(k)],
  ['node-redis', (k) => nr.get(k)],
  ['dcache', (k) => dc.get(k)],
];
const res: Record<string, number[]> = {};
for (const [, get] of clients) await measure(get); // warm-up
for (let r = 0; r < ROUNDS; r++)
  for (const [name, get] of clients) {
    const xs = res[name] ?? [];
    xs.push((await measure(get)).usPerGet);
    res[name] = xs;
  }
for (const [name, xs] of Object.entries(res))
  console.log(
    `${name.padEnd(11)} ${median(xs).toFixed(2)} µs CPU per GET (runs ${xs.map((x) => x.toFixed(2)).join(' / ')}), ${(median(xs) / median(res.ioredis ?? [1])).toFixed(2)}× ioredis`,
  );
io.disconnect();
await nr.quit();
await dc.close();
await redis.close();
