/**
 * Differential test (as Dynomite tests itself): one seeded random command stream run against
 * dcache over 3 nodes and against one plain redis-server; every reply must be the same (errors
 * by their first word, TTLs as ranges).
 */
import {
  cleanupAll,
  type RedisCluster,
  type RedisServer,
  startRedis,
  startRedisCluster,
} from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Raw, RawClient, type RespDcache, startRespDcache } from './resp-env.js';

const SEED = Number(process.env.DC_RESP_SEED ?? 18_2026);
const COMMANDS = 2000;
const KEY_COUNT = 50;

/** mulberry32: a small seeded PRNG, so a failing stream can be replayed with DC_RESP_SEED. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Cmd = string[];

/** The random stream: ~50 keys shared by every type, so wrong-type errors happen often. */
function stream(seed: number, n: number): Cmd[] {
  const rnd = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const key = () => `d:${int(0, KEY_COUNT - 1)}`;
  const keys = () => Array.from({ length: int(1, 6) }, key);
  const val = () =>
    rnd() < 0.4 ? String(int(-50, 50)) : `v${int(0, 9)}${rnd() < 0.2 ? ' x\r\ny' : ''}`;
  const field = () => `f${int(0, 4)}`;
  const member = () => `m${int(0, 5)}`;
  const gens: (() => Cmd)[] = [
    () => ['SET', key(), val()],
    () => ['GET', key()],
    () => ['DEL', ...keys()],
    () => ['EXISTS', ...keys()],
    () => ['MGET', ...keys()],
    () => ['MSET', ...keys().flatMap((k) => [k, val()])],
    () => ['INCR', key()],
    () => ['APPEND', key(), val()],
    () => ['STRLEN', key()],
    () => ['HSET', key(), field(), val()],
    () => ['HGET', key(), field()],
    () => ['HDEL', key(), field()],
    () => ['LPUSH', key(), val()],
    () => ['RPOP', key()],
    () => ['LLEN', key()],
    () => ['SADD', key(), member()],
    () => ['SREM', key(), member()],
    () => ['SCARD', key()],
    () => ['ZADD', key(), String(int(-5, 5) / 2), member()],
    () => ['ZSCORE', key(), member()],
    () => ['EXPIRE', key(), String(int(1000, 5000))],
    () => ['PERSIST', key()],
    () => ['TYPE', key()],
    () => ['TTL', key()],
  ];
  return Array.from({ length: n }, () => (gens[int(0, gens.length - 1)] as () => Cmd)());
}

/** A reply in comparable form: bulk strings as text, errors by their first word. */
function norm(r: Raw): unknown {
  if (Buffer.isBuffer(r)) return r.toString('latin1');
  if (r instanceof Error) return `error:${r.message.split(' ')[0]}`;
  if (Array.isArray(r)) return r.map(norm);
  return r;
}

/** A reply for the failure report: errors in full. */
function show(r: Raw): string {
  return r instanceof Error ? `-${r.message}` : JSON.stringify(norm(r));
}

/** Compare one reply pair; TTLs compare as ranges (both expired/persistent, or both within 10 s). */
function same(cmd: Cmd, got: Raw, want: Raw): boolean {
  if (cmd[0] === 'TTL' && typeof got === 'number' && typeof want === 'number') {
    if (want < 0 || got < 0) return got === want;
    return Math.abs(got - want) <= 10;
  }
  return JSON.stringify(norm(got)) === JSON.stringify(norm(want));
}

async function runStream(c: RawClient, cmds: Cmd[], depth: number): Promise<Raw[]> {
  const out: Raw[] = [];
  for (let i = 0; i < cmds.length; i += depth)
    out.push(...(await c.pipeline(cmds.slice(i, i + depth))));
  return out;
}

describe(`differential: dcache (3 nodes) vs one redis-server, seed ${SEED}`, () => {
  let redis: RedisCluster;
  let single: RedisServer;
  let dc: RespDcache;

  beforeAll(async () => {
    [redis, single] = await Promise.all([startRedisCluster(3), startRedis()]);
    dc = await startRespDcache(redis);
  });
  afterAll(async () => {
    await dc?.proxy.proc.stop(5_000);
    await cleanupAll();
  });

  for (const depth of [1, 25]) {
    it(`${COMMANDS} random commands over ${KEY_COUNT} keys, ${depth === 1 ? 'one at a time' : `pipelined ${depth} deep`}: every reply equal`, async () => {
      await Promise.all([...redis.nodes, single].map((n) => n.flush()));
      const cmds = stream(SEED + depth, COMMANDS);
      const [a, b] = await Promise.all([
        RawClient.connect(dc.respPort),
        RawClient.connect(single.port),
      ]);
      try {
        const got = await runStream(a, cmds, depth);
        const want = await runStream(b, cmds, depth);
        const diffs: string[] = [];
        cmds.forEach((cmd, i) => {
          if (!same(cmd, got[i] as Raw, want[i] as Raw))
            diffs.push(
              `#${i} ${cmd.join(' ')}: dcache ${show(got[i] as Raw)} redis ${show(want[i] as Raw)}`,
            );
        });
        expect(diffs.slice(0, 20)).toEqual([]);
        // The stream exercised what it is meant to: wrong-type errors and keys on every node.
        const errors = want
          .filter((r) => r instanceof Error)
          .map((r) => (r as Error).message.split(' ')[0]);
        expect(errors).toContain('WRONGTYPE');
        const nodes = new Set<number>();
        for (const [i, n] of redis.nodes.entries())
          if (((await n.command('DBSIZE')) as number) > 0) nodes.add(i);
        expect(nodes.size).toBe(3);
        // Final state: the same keys with the same types.
        for (let k = 0; k < KEY_COUNT; k++) {
          const [ta, tb] = await Promise.all([a.call('TYPE', `d:${k}`), b.call('TYPE', `d:${k}`)]);
          expect(norm(ta), `TYPE d:${k}`).toEqual(norm(tb));
        }
      } finally {
        a.close();
        b.close();
      }
    });
  }
});
