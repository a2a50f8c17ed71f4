import { type RedisServer, startRedis, waitFor } from '@dcache/test-utils';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisConnection } from '../../src/upstream/resp/redis-connection.js';
import type { RespConnectionOptions } from '../../src/upstream/resp/resp-connection.js';
import { ReplyError } from '../../src/upstream/resp/resp-parser.js';

const opened: RedisConnection[] = [];
function open(server: RedisServer, extra: Partial<RespConnectionOptions> = {}): RedisConnection {
  const c = new RedisConnection({
    host: server.host,
    port: server.port,
    connectTimeout: 2_000,
    reconnectMax: 100,
    ...extra,
  });
  c.on('error', () => {});
  opened.push(c);
  return c;
}
const ready = (c: RedisConnection) => waitFor(() => c.status === 'ready', { timeout: 10_000 });

afterAll(async () => {
  await Promise.all(opened.map((c) => c.close(100)));
});

describe('RedisConnection against a real redis-server', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('answers every reply type and keeps the order of a deep pipeline', async () => {
    const c = open(server);
    await ready(c);
    expect(await c.set('k', 'v1')).toBe('OK');
    expect(await c.get('k')).toBe('v1');
    expect(await c.get('missing')).toBeNull();
    expect(await c.set('k2', 'x', 'PX', 60_000, 'NX')).toBe('OK');
    expect(await c.set('k2', 'y', 'PX', 60_000, 'NX')).toBeNull();
    expect(await c.pttl('k2')).toBeGreaterThan(50_000);
    expect(await c.exists('k', 'k2', 'missing')).toBe(2);
    expect(await c.mget(['k', 'missing', 'k2'])).toEqual(['v1', null, 'x']);
    await expect(c.send(['INCR', 'k'])).rejects.toBeInstanceOf(ReplyError);
    expect((await c.role())[0]).toBe('master');

    // 1,000 commands in one pipeline, with errors between them: each answer in its place.
    const pl = c.pipeline();
    for (let i = 0; i < 1_000; i++) {
      if (i % 100 === 7) pl.set('k', 'v1', 'PX', 'not-a-number');
      else pl.set(`p:${i}`, `value ${i}\r\n\0`);
    }
    const res = await pl.exec();
    expect(res).toHaveLength(1_000);
    res.forEach(([e, v], i) => {
      if (i % 100 === 7) expect(e).toBeInstanceOf(ReplyError);
      else expect([e, v]).toEqual([null, 'OK']);
    });
    // Many single commands of one turn, interleaved reads: each reply matches its command.
    const got = await Promise.all(
      Array.from({ length: 500 }, (_, i) => (i % 100 === 7 ? c.get('k') : c.get(`p:${i}`))),
    );
    for (const [i, v] of got.entries()) expect(v).toBe(i % 100 === 7 ? 'v1' : `value ${i}\r\n\0`);
  });

  it('moves a 1 MiB value and binary bytes exactly', async () => {
    const c = open(server);
    const b = open(server, { buffers: true });
    await ready(c);
    await ready(b);
    const big = `${'é'.repeat(512 * 1024)}`;
    await c.set('big', big);
    expect(await c.get('big')).toBe(big);
    const bin = Buffer.from([0, 13, 10, 255, 254, 0]);
    expect(await b.send(['SET', 'bin', bin])).toBe('OK'); // simple strings stay strings
    expect((await b.send<Buffer>(['GET', 'bin'])).equals(bin)).toBe(true);
  });

  it('gives the same replies as ioredis for a random command stream (differential)', async () => {
    const c = open(server);
    await ready(c);
    const ref = new Redis({ host: server.host, port: server.port, lazyConnect: false });
    try {
      const key = fc.constantFrom('d:a', 'd:b', 'd:c', 'd:list');
      const cmd = fc.oneof(
        fc.tuple(fc.constant('SET'), key, fc.string({ maxLength: 30 })),
        fc.tuple(fc.constant('GET'), key),
        fc.tuple(fc.constant('DEL'), key, key),
        fc.tuple(fc.constant('EXISTS'), key, key),
        fc.tuple(fc.constant('INCR'), key),
        fc.tuple(fc.constant('APPEND'), key, fc.string({ maxLength: 5 })),
        fc.tuple(fc.constant('RPUSH'), key, fc.string({ maxLength: 5 })),
        fc.tuple(fc.constant('LRANGE'), key, fc.constant('0'), fc.constant('-1')),
        fc.tuple(fc.constant('MGET'), key, key, key),
        fc.tuple(fc.constant('PTTL'), key),
        fc.tuple(fc.constant('STRLEN'), key),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(cmd, { minLength: 1, maxLength: 30 }), async (cmds) => {
          // The same stream on each client from the same start: replies must be equal.
          const run = async (send: (a: string[]) => Promise<unknown>) => {
            await ref.flushdb();
            const out: unknown[] = [];
            for (const a of cmds) {
              try {
                out.push(await send([...a]));
              } catch (e) {
                out.push({ error: (e as Error).message });
              }
            }
            return out;
          };
          const ours = await run((a) => c.send(a));
          const theirs = await run(([name, ...rest]) => ref.call(name as string, ...rest));
          expect(ours).toEqual(theirs);
        }),
        { numRuns: 60 },
      );
    } finally {
      ref.disconnect();
    }
  });

  it('fails at once while not connected, then reconnects by itself after a restart', async () => {
    const s = await startRedis();
    try {
      const c = open(s);
      await ready(c);
      await c.set('x', '1');
      await s.kill();
      await waitFor(() => c.status !== 'ready', { timeout: 10_000 });
      const t0 = performance.now();
      await expect(c.get('x')).rejects.toThrow(/not ready/);
      expect(performance.now() - t0).toBeLessThan(1_000);
      await s.restart();
      await ready(c);
      expect(await c.get('x')).toBeNull(); // restarted empty; the connection works again
    } finally {
      await s.close();
    }
  });

  it('with a SIGSTOPped server: replies wait, the bounded queue fails fast, and all resume on SIGCONT', async () => {
    const s = await startRedis();
    try {
      const c = open(s, { maxPending: 50 });
      await ready(c);
      await c.set('s', 'before');
      s.stop();
      const waiting = Array.from({ length: 50 }, () => c.get('s'));
      // The 51st command is refused at once: a stalled node does not collect an endless queue.
      await expect(c.get('s')).rejects.toThrow(/queue full/);
      expect(c.pending).toBe(50);
      s.cont();
      expect(await Promise.all(waiting)).toEqual(Array(50).fill('before'));
      expect(c.pending).toBe(0);
      expect(await c.get('s')).toBe('before');
    } finally {
      s.cont();
      await s.close();
    }
  });

  it('a SIGSTOPped server at connect time: the handshake times out and the attempt is retried', async () => {
    const s = await startRedis();
    try {
      s.stop();
      const errors: string[] = [];
      // CLIENT SETNAME makes a handshake (the proxy always names its connections).
      const c = open(s, { connectTimeout: 300, name: 'dcache-test' });
      c.on('error', (e: Error) => errors.push(e.message));
      await waitFor(() => errors.some((m) => /ETIMEDOUT/.test(m)), { timeout: 10_000 });
      expect(c.status).not.toBe('ready');
      s.cont();
      await ready(c);
      expect(await c.ping()).toBe('PONG');
    } finally {
      s.cont();
      await s.close();
    }
  });
});

describe('handshake: AUTH with user and password, SELECT', () => {
  let acl: RedisServer;
  let pass: RedisServer;
  beforeAll(async () => {
    [acl, pass] = await Promise.all([
      startRedis({ username: 'app', password: 'app-secret' }),
      startRedis({ password: 'plain-secret' }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([acl?.close(), pass?.close()]);
  });

  it('authenticates as an ACL user and selects the database', async () => {
    const c = open(acl, { username: 'app', password: 'app-secret', db: 3 });
    await ready(c);
    await c.set('in-db-3', 'yes');
    expect(await c.send(['ACL', 'WHOAMI'])).toBe('app');
    expect(await acl.command('SELECT', '3')).toBe('OK');
    // The fixture's own connection is on db 0: the key is not there.
    expect(await acl.command('EXISTS', 'in-db-3')).toBe(0);
  });

  it('authenticates with a password alone, and reports a wrong one as an error without becoming ready', async () => {
    const good = open(pass, { password: 'plain-secret' });
    await ready(good);
    expect(await good.ping()).toBe('PONG');
    const errors: string[] = [];
    const bad = open(pass, { password: 'wrong' });
    bad.on('error', (e: Error) => errors.push(e.message));
    await waitFor(() => errors.some((m) => /WRONGPASS|invalid password/.test(m)), {
      timeout: 10_000,
    });
    expect(bad.status).not.toBe('ready');
    await expect(bad.get('x')).rejects.toThrow(/not ready/);
  });
});
