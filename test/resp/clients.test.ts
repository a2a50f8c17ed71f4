/**
 * Real clients (ioredis, redis-cli, redis-benchmark) against dcache's RESP port over 3 real
 * redis-servers (issue 18).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cleanupAll, type RedisCluster, startRedisCluster } from '@dcache/test-utils';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, type RespDcache, startRespDcache, text, whereIs } from './resp-env.js';

const run = promisify(execFile);
const REDIS_CLI = '/usr/bin/redis-cli';
const REDIS_BENCHMARK = '/usr/bin/redis-benchmark';

describe('RESP front end with real clients, 3 nodes', () => {
  let redis: RedisCluster;
  let dc: RespDcache;
  let client: Redis;

  beforeAll(async () => {
    redis = await startRedisCluster(3);
    dc = await startRespDcache(redis);
    client = new Redis({
      host: '127.0.0.1',
      port: dc.respPort,
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    await client.connect();
  });
  afterAll(async () => {
    client?.disconnect();
    await dc?.proxy.proc.stop(5_000);
    await cleanupAll();
  });

  it('ioredis: strings, counters, hashes, lists, TTLs', async () => {
    expect(await client.set('c:str', 'hello')).toBe('OK');
    expect(await client.get('c:str')).toBe('hello');
    expect(await client.exists('c:str', 'c:none')).toBe(1);
    expect(await client.del('c:str')).toBe(1);
    expect(await client.get('c:str')).toBeNull();
    expect(await client.exists('c:str')).toBe(0);

    expect(await client.incr('c:n')).toBe(1);
    expect(await client.incr('c:n')).toBe(2);
    expect(await client.get('c:n')).toBe('2');

    expect(await client.hset('c:h', 'a', '1', 'b', '2')).toBe(2);
    expect(await client.hgetall('c:h')).toEqual({ a: '1', b: '2' });

    expect(await client.lpush('c:l', 'x', 'y', 'z')).toBe(3);
    expect(await client.lrange('c:l', 0, -1)).toEqual(['z', 'y', 'x']);

    expect(await client.ttl('c:h')).toBe(-1);
    expect(await client.ttl('c:none')).toBe(-2);
    expect(await client.expire('c:h', 100)).toBe(1);
    const ttl = await client.ttl('c:h');
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(100);
    expect(await client.expire('c:none', 100)).toBe(0);

    // Each key is stored once, on a node, through the proxy.
    for (const k of ['c:n', 'c:h', 'c:l']) expect(await whereIs(redis, k)).toBeDefined();
  });

  it('ioredis: binary values with CR, LF, NUL and 0xff bytes round-trip', async () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const tricky = Buffer.concat([
      Buffer.from('\r\n$5\r\n*1\r\n'),
      Buffer.from([0, 0, 0xff, 0xfe, 0x0d, 0x0a, 0x00]),
      all,
      Buffer.from('\r\n'),
    ]);
    const values = [tricky, all, Buffer.from([0]), Buffer.from([0xff]), Buffer.from('\r\n')];
    for (const [i, v] of values.entries()) {
      expect(await client.set(`bin:${i}`, v)).toBe('OK');
      const got = await client.getBuffer(`bin:${i}`);
      expect(got).not.toBeNull();
      expect(Buffer.compare(got as Buffer, v)).toBe(0);
      expect(await client.strlen(`bin:${i}`)).toBe(v.length);
    }
    // Empty value is a value, not a miss.
    expect(await client.set('bin:empty', Buffer.alloc(0))).toBe('OK');
    expect((await client.getBuffer('bin:empty'))?.length).toBe(0);
  });

  it('ioredis: a 1 MiB value round-trips', async () => {
    const big = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
    expect(await client.set('big:1m', big)).toBe('OK');
    const got = await client.getBuffer('big:1m');
    expect(got?.length).toBe(big.length);
    expect(Buffer.compare(got as Buffer, big)).toBe(0);
    // The connection stays usable after the large frames.
    expect(await client.ping()).toBe('PONG');
  });

  for (const depth of [1, 10, 1000]) {
    it(`ioredis: a pipeline of ${depth} commands answers in order`, async () => {
      const p = client.pipeline();
      for (let i = 0; i < depth; i++) {
        // A mix of commands so the replies differ in type and node.
        if (i % 3 === 0) p.set(`pipe:${depth}:${i}`, `v${i}`);
        else if (i % 3 === 1) p.incrby(`pipe:${depth}:n:${i}`, i);
        else p.echo(`e${i}`);
      }
      const res = await p.exec();
      expect(res).not.toBeNull();
      expect(res?.length).toBe(depth);
      res?.forEach(([err, val], i) => {
        expect(err).toBeNull();
        if (i % 3 === 0) expect(val).toBe('OK');
        else if (i % 3 === 1) expect(val).toBe(i);
        else expect(val).toBe(`e${i}`);
      });
      const g = client.pipeline();
      for (let i = 0; i < depth; i += 3) g.get(`pipe:${depth}:${i}`);
      const got = await g.exec();
      got?.forEach(([err, val], j) => {
        expect(err).toBeNull();
        expect(val).toBe(`v${j * 3}`);
      });
    });
  }

  it('a pipeline executes commands on one key in request order, whatever path each takes', async () => {
    // Single-key forwards, GET and split multi-key commands on the same keys, 50 rounds: a
    // later command must never overtake an earlier one (Redis clients rely on it).
    for (let round = 0; round < 50; round++) {
      const k = `order:${round}`;
      const other = `order:other:${round}`;
      const p = client.pipeline();
      p.sadd(k, 'm');
      p.del(k, other);
      p.sadd(k, 'm');
      p.del(k);
      p.mset(k, '1', other, '2');
      p.incr(k);
      p.get(k);
      p.exists(k, other);
      const res = (await p.exec())?.map(([err, v]) => (err ? `error: ${err.message}` : v));
      expect(res, `round ${round}`).toEqual([1, 1, 1, 1, 'OK', 2, '2', 2]);
    }
  });

  it('ioredis scanStream walks the opaque SCAN cursor to every key exactly once', async () => {
    const expected = new Set<string>();
    for (const n of redis.nodes)
      for (const k of (await n.command('KEYS', '*')) as string[]) expected.add(k);
    expect(expected.size).toBeGreaterThan(100);
    const seen: string[] = [];
    for await (const batch of client.scanStream({ count: 25 })) seen.push(...(batch as string[]));
    expect(seen.length).toBe(expected.size);
    expect(new Set(seen)).toEqual(expected);
  });

  it('MSET/MGET over keys on every node, merged in request order', async () => {
    const keys = Array.from({ length: 60 }, (_, i) => `multi:${i}`);
    const flat: string[] = [];
    for (const k of keys) flat.push(k, `val-${k}`);
    expect(await client.mset(...flat)).toBe('OK');
    const nodes = new Set<string>();
    for (const k of keys) {
      const w = await whereIs(redis, k);
      expect(w, `key ${k} stored`).toBeDefined();
      nodes.add(w as string);
    }
    expect(nodes.size).toBe(3);
    const asked = [...keys.slice(0, 30), 'multi:missing', ...keys.slice(30).reverse()];
    const got = await client.mget(...asked);
    expect(got).toEqual(asked.map((k) => (k === 'multi:missing' ? null : `val-${k}`)));
    // Multi-key integer commands sum over nodes.
    expect(await client.exists(...keys, 'multi:missing')).toBe(60);
    expect(await client.del(...keys.slice(0, 20))).toBe(20);
    expect(await client.exists(...keys)).toBe(40);
  });

  it('raw RESP: a 1000-deep pipeline in a single write answers in order', async () => {
    const c = await RawClient.connect(dc.respPort);
    try {
      const cmds = Array.from({ length: 1000 }, (_, i) =>
        i % 2 === 0 ? ['SET', `raw:${i}`, String(i)] : ['GET', `raw:${i - 1}`],
      );
      const replies = await c.pipeline(cmds);
      expect(replies.map(text)).toEqual(
        cmds.map((_cmd, i) => (i % 2 === 0 ? 'OK' : String(i - 1))),
      );
    } finally {
      c.close();
    }
  });

  it('redis-cli: SET, GET and --scan listing every key', async () => {
    const cli = (...args: string[]) =>
      run(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(dc.respPort), ...args], {
        timeout: 30_000,
      });
    expect((await cli('SET', 'cli:one', 'uno')).stdout.trim()).toBe('OK');
    expect((await cli('GET', 'cli:one')).stdout.trim()).toBe('uno');
    const scanKeys = Array.from({ length: 50 }, (_, i) => `scan:${i}`);
    for (let i = 0; i < scanKeys.length; i += 10) {
      const args: string[] = [];
      for (const k of scanKeys.slice(i, i + 10)) args.push(k, '1');
      expect((await cli('MSET', ...args)).stdout.trim()).toBe('OK');
    }
    const spread = new Set<string>();
    for (const k of scanKeys) spread.add((await whereIs(redis, k)) as string);
    expect(spread.size).toBe(3);
    // Every key stored on any node, exactly once.
    const expected = new Set<string>();
    for (const n of redis.nodes) {
      const ks = (await n.command('KEYS', '*')) as string[];
      for (const k of ks) expected.add(k);
    }
    const { stdout } = await cli('--scan');
    const listed = stdout.split('\n').filter((l) => l !== '');
    expect(listed.length).toBe(expected.size);
    expect(new Set(listed)).toEqual(expected);
    const { stdout: matched } = await cli('--scan', '--pattern', 'scan:*');
    expect(new Set(matched.split('\n').filter((l) => l !== ''))).toEqual(new Set(scanKeys));
  });

  it('redis-benchmark -t set,get -n 2000 -q exits 0 and reports requests per second', async () => {
    const { stdout, stderr } = await run(
      REDIS_BENCHMARK,
      ['-h', '127.0.0.1', '-p', String(dc.respPort), '-t', 'set,get', '-n', '2000', '-q'],
      { timeout: 120_000 },
    );
    const out = `${stdout}\n${stderr}`;
    // -q prints "SET: 12345.67 requests per second, p50=…" (with \r progress lines before).
    expect(out, out).toMatch(/SET: [\d.]+ requests per second/);
    expect(out, out).toMatch(/GET: [\d.]+ requests per second/);
    // The benchmark's keys went through the ring to a node.
    expect(await whereIs(redis, 'key:__rand_int__')).toBeDefined();
  });
});
