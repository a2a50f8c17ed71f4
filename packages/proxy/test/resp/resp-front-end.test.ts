import { connect } from 'node:net';
import { freePort, type RedisCluster, startRedisCluster } from '@dcache/test-utils';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, type TestProxy } from '../helpers.js';

/** The raw bytes a socket receives until it closes (bounded by `ms`). */
function exchange(port: number, bytes: string, ms = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`no close within ${ms} ms; got ${JSON.stringify(got)}`));
    }, ms);
    s.on('data', (d) => {
      got += d.toString('latin1');
    });
    s.on('close', () => {
      clearTimeout(t);
      resolve(got);
    });
    s.on('error', reject);
    s.write(bytes);
  });
}

describe('RESP front end in one process with the REST API', () => {
  let nodes: RedisCluster;
  let proxy: TestProxy;
  let port: number;
  let client: Redis;
  let direct: Redis[];

  beforeAll(async () => {
    nodes = await startRedisCluster(3);
    port = await freePort();
    proxy = await startProxy(nodes.addresses, {
      DC_RESP_PORT: String(port),
      DC_REPLICATION_FACTOR: '2',
      DC_RESP_MAX_INFLIGHT: '4',
    });
    client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
    await client.connect();
    direct = nodes.nodes.map(
      (n) => new Redis({ port: n.port, host: '127.0.0.1', maxRetriesPerRequest: 0 }),
    );
  }, 60_000);

  afterAll(async () => {
    client?.disconnect();
    for (const d of direct ?? []) d.disconnect();
    await proxy?.close();
    await nodes?.stopAll();
  });

  it('one keyspace for both front ends: JSON text both ways, other bytes as a JSON string', async () => {
    const put = await proxy.req('PUT', '/api/v1/cache/both', { json: { value: { a: 1 } } });
    expect(put.status).toBe(200);
    expect(await client.get('both')).toBe('{"a":1}');
    await client.set('plain', 'not json {');
    const got = await proxy.req('GET', '/api/v1/cache/plain');
    expect(got.status).toBe(200);
    expect(got.body).toEqual({ key: 'plain', value: 'not json {' });
    await client.set('num', '42');
    expect((await proxy.req('GET', '/api/v1/cache/num')).body).toEqual({ key: 'num', value: 42 });
    const batch = await proxy.req('POST', '/api/v1/cache/batch/get', {
      json: { keys: ['plain', 'num'] },
    });
    expect(batch.body.items).toEqual({ plain: 'not json {', num: 42 });
  });

  it('writes a forwarded command to every owner (replication factor 2)', async () => {
    await client.hset('h:1', 'f', 'v');
    const holders = (await Promise.all(direct.map((d) => d.hget('h:1', 'f')))).filter(
      (v) => v === 'v',
    );
    expect(holders).toHaveLength(2);
  });

  it('answers a pipeline deeper than max_inflight in order', async () => {
    const p = client.pipeline();
    for (let i = 0; i < 300; i++) {
      if (i % 3 === 0) p.set(`p:${i}`, String(i));
      else if (i % 3 === 1) p.get(`p:${i - 1}`);
      else p.incr(`c:${i % 7}`);
    }
    const res = (await p.exec()) ?? [];
    expect(res).toHaveLength(300);
    for (let i = 0; i < 300; i++) {
      const [err, v] = res[i] as [Error | null, unknown];
      expect(err).toBeNull();
      if (i % 3 === 0) expect(v).toBe('OK');
      else if (i % 3 === 1) expect(v).toBe(String(i - 1));
      else expect(typeof v).toBe('number');
    }
  });

  it('passes node errors on and keeps the connection', async () => {
    await client.set('str', 'x');
    await expect(client.lpush('str', 'y')).rejects.toThrow(/^WRONGTYPE/);
    await expect(client.call('MULTI')).rejects.toThrow(/unsupported command 'MULTI'/);
    await expect(client.call('NOSUCH', 'a')).rejects.toThrow(/unknown command 'NOSUCH'/);
    await expect(client.call('GET')).rejects.toThrow(/wrong number of arguments for 'get'/);
    expect(await client.get('str')).toBe('x');
  });

  it('refuses bytes that are not RESP with a protocol error and closes', async () => {
    const got = await exchange(port, 'PING\r\n');
    expect(got).toMatch(/^-ERR Protocol error: /);
  });

  it('stops reading a client that does not read its replies, and serves it once it does', async () => {
    const big = Buffer.alloc(256 * 1024, 7);
    await client.set('big', big);
    const n = 400;
    const s = connect(port, '127.0.0.1');
    await new Promise<void>((r) => s.once('connect', () => r()));
    s.pause();
    const cmd = Buffer.from('*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n');
    s.write(Buffer.concat(Array.from({ length: n }, () => cmd)));
    // 400 replies of 256 KiB (100 MiB) cannot all sit in socket buffers: the proxy must pause.
    const paused = async () =>
      /dcache_resp_backpressure_total [1-9]/.test((await proxy.req('GET', '/metrics')).text);
    const until = Date.now() + 20_000;
    while (!(await paused())) {
      if (Date.now() > until) throw new Error('the proxy never stopped reading the client');
      await new Promise((r) => setTimeout(r, 50));
    }
    // Now read everything: every reply arrives, whole and in order.
    const want = n * (big.length + `$${big.length}\r\n`.length + 2);
    let got = 0;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`only ${got} of ${want} bytes`)), 60_000);
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= want) {
          clearTimeout(t);
          resolve();
        }
      });
      s.resume();
    });
    expect(got).toBe(want);
    // One client's backlog is its own: no node was charged for it.
    expect([...proxy.server.rt.router.excluded]).toEqual([]);
    s.destroy();
  }, 90_000);

  it('QUIT answers OK and closes', async () => {
    expect(await exchange(port, '*1\r\n$4\r\nQUIT\r\n')).toBe('+OK\r\n');
  });
});
