/** node-redis (the `redis` package) against dcache's RESP port over 3 real redis-servers (issue 18). */
import { cleanupAll, type RedisCluster, startRedisCluster } from '@dcache/test-utils';
import { createClient, RESP_TYPES } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RespDcache, startRespDcache, whereIs } from './resp-env.js';

describe('node-redis against the RESP front end, 3 nodes', () => {
  let redis: RedisCluster;
  let dc: RespDcache;
  let client: ReturnType<typeof createClient>;

  beforeAll(async () => {
    redis = await startRedisCluster(3);
    dc = await startRespDcache(redis);
    client = createClient({
      socket: { host: '127.0.0.1', port: dc.respPort, reconnectStrategy: false },
    });
    client.on('error', () => {});
    await client.connect();
  });
  afterAll(async () => {
    if (client?.isOpen) client.destroy();
    await dc?.proxy.proc.stop(5_000);
    await cleanupAll();
  });

  it('connects (its CLIENT SETINFO handshake is accepted) and runs typed commands', async () => {
    expect(await client.ping()).toBe('PONG');
    expect(await client.set('nr:s', 'x')).toBe('OK');
    expect(await client.get('nr:s')).toBe('x');
    expect(await client.hSet('nr:h', { a: '1', b: '2' })).toBe(2);
    expect(await client.hGetAll('nr:h')).toEqual({ a: '1', b: '2' });
    expect(await client.sAdd('nr:set', ['p', 'q'])).toBe(2);
    expect((await client.sMembers('nr:set')).sort()).toEqual(['p', 'q']);
    expect(
      await client.zAdd('nr:z', [
        { score: 2, value: 'b' },
        { score: 1, value: 'a' },
      ]),
    ).toBe(2);
    expect(await client.zRange('nr:z', 0, -1)).toEqual(['a', 'b']);
  });

  it('binary values round-trip as Buffers', async () => {
    const v = Buffer.from([0, 13, 10, 255, 0, 36, 42, 13, 10]);
    await client.set('nr:bin', v);
    const got = await client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }).get('nr:bin');
    expect(Buffer.isBuffer(got)).toBe(true);
    expect(Buffer.compare(got as Buffer, v)).toBe(0);
  });

  it('500 concurrent commands (auto-pipelined) answer in order; MGET spans every node', async () => {
    const keys = Array.from({ length: 250 }, (_, i) => `nr:k:${i}`);
    const sets = await Promise.all(keys.map((k) => client.set(k, `v:${k}`)));
    expect(sets.every((r) => r === 'OK')).toBe(true);
    const gets = await Promise.all(keys.map((k) => client.get(k)));
    expect(gets).toEqual(keys.map((k) => `v:${k}`));
    const nodes = new Set<string>();
    for (const k of keys.slice(0, 30)) nodes.add((await whereIs(redis, k)) as string);
    expect(nodes.size).toBe(3);
    const asked = [...keys.slice(0, 30), 'nr:none'];
    expect(await client.mGet(asked)).toEqual(asked.map((k) => (k === 'nr:none' ? null : `v:${k}`)));
  });

  it('a refused command rejects with the error; the client keeps working', async () => {
    await expect(client.keys('*')).rejects.toThrow(/unsupported command/i);
    expect(await client.get('nr:s')).toBe('x');
  });
});
