/**
 * Placement through RESP: a key SET through dcache sits on the node nutcracker (twemproxy) would
 * choose for the same servers, hash and hash_tag (issue 18: a twemproxy pool moves to dcache with
 * every key where it already is).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cleanupAll,
  freePort,
  type RedisCluster,
  startProcess,
  startRedisCluster,
  type TestProcess,
  waitFor,
} from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, startRespDcache, text } from './resp-env.js';

const NUTCRACKER = process.env.DC_NUTCRACKER ?? '/usr/sbin/nutcracker';
if (!existsSync(NUTCRACKER)) {
  throw new Error(
    `nutcracker (twemproxy) not found at ${NUTCRACKER}: install it (Debian/Ubuntu: apt-get install nutcracker) or point DC_NUTCRACKER at it`,
  );
}

/** 300 keys: ASCII, UTF-8, hash-tagged, empty tags, odd braces, long keys. */
const KEYS = Array.from({ length: 300 }, (_, i) => {
  if (i % 6 === 1) return `ключ:${i}:键`;
  if (i % 6 === 2) return `{user${i % 17}}:cart:${i}`;
  if (i % 6 === 3) return `{}empty:${i}`;
  if (i % 6 === 4) return `a}b{c:${i}`;
  if (i % 6 === 5) return `${'x'.repeat(i)}:${i}`;
  return `k:${i}`;
});

/** key → node address, from KEYS * on every node (a key on two nodes fails). */
async function placement(redis: RedisCluster): Promise<Map<string, string>> {
  const where = new Map<string, string>();
  for (const n of redis.nodes) {
    for (const k of (await n.command('KEYS', '*')) as string[]) {
      expect(where.has(k), `key ${k} on two nodes`).toBe(false);
      where.set(k, n.address);
    }
  }
  return where;
}

async function setAll(port: number): Promise<void> {
  const c = await RawClient.connect(port);
  try {
    const replies = await c.pipeline(KEYS.map((k) => ['SET', k, 'v']));
    expect(replies.map(text)).toEqual(KEYS.map(() => 'OK'));
  } finally {
    c.close();
  }
}

async function startNutcracker(
  redis: RedisCluster,
  hash: string,
  hashTag: string,
  dir: string,
): Promise<{ port: number; proc: TestProcess }> {
  const port = await freePort();
  const stats = await freePort();
  const conf = [
    'pool:',
    `  listen: 127.0.0.1:${port}`,
    `  hash: ${hash}`,
    ...(hashTag ? [`  hash_tag: "${hashTag}"`] : []),
    '  distribution: ketama',
    '  redis: true',
    '  auto_eject_hosts: false',
    '  timeout: 5000',
    '  servers:',
    ...redis.addresses.map((a) => `    - ${a}:1`),
    '',
  ].join('\n');
  const file = join(dir, `nutcracker-${hash}.yml`);
  writeFileSync(file, conf);
  const proc = await startProcess(NUTCRACKER, ['-c', file, '-s', String(stats), '-a', '127.0.0.1']);
  await waitFor(
    async () => {
      if (!proc.running) throw new Error(`nutcracker exited: ${proc.output()}`);
      try {
        const c = await RawClient.connect(port);
        const pong = await c.call('PING');
        c.close();
        return pong === 'PONG';
      } catch {
        return false;
      }
    },
    { timeout: 15_000, interval: 50, message: 'nutcracker to answer PING' },
  );
  return { port, proc };
}

describe('placement through RESP equals nutcracker’s, 3 nodes', () => {
  let redis: RedisCluster;
  let dir: string;
  beforeAll(async () => {
    redis = await startRedisCluster(3);
    dir = mkdtempSync(join(tmpdir(), 'dc-resp-nc-'));
  });
  afterAll(async () => {
    await cleanupAll();
    rmSync(dir, { recursive: true, force: true });
  });

  const cases: { hash: string; hashTag: string }[] = [
    { hash: 'murmur', hashTag: '' },
    { hash: 'fnv1a_64', hashTag: '{}' },
  ];
  for (const { hash, hashTag } of cases) {
    it(`${hash}${hashTag ? ` with hash_tag ${hashTag}` : ''}: 300 keys on nutcracker’s node`, async () => {
      await Promise.all(redis.nodes.map((n) => n.flush()));
      const dc = await startRespDcache(redis, {
        DC_CACHE_HASH: hash,
        ...(hashTag ? { DC_CACHE_HASH_TAG: hashTag } : {}),
      });
      try {
        await setAll(dc.respPort);
      } finally {
        await dc.proxy.proc.stop(5_000);
      }
      const viaDcache = await placement(redis);
      expect(viaDcache.size).toBe(KEYS.length);

      await Promise.all(redis.nodes.map((n) => n.flush()));
      const nc = await startNutcracker(redis, hash, hashTag, dir);
      try {
        await setAll(nc.port);
      } finally {
        await nc.proc.stop(2_000);
      }
      const viaNutcracker = await placement(redis);
      expect(viaNutcracker.size).toBe(KEYS.length);

      const mismatches = KEYS.filter((k) => viaDcache.get(k) !== viaNutcracker.get(k)).map(
        (k) => `${k}: dcache ${viaDcache.get(k)} nutcracker ${viaNutcracker.get(k)}`,
      );
      expect(mismatches).toEqual([]);
      expect(new Set(viaDcache.values()).size).toBe(3);
    });
  }
});
