/**
 * Differential test against the real twemproxy (nutcracker): keys written through
 * nutcracker must sit on exactly the node `Ring.owner` names, for every hash.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  freePort,
  type RedisCluster,
  startProcess,
  startRedisCluster,
  type TestProcess,
} from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HashName, Ring, type RingNodeInput } from '../src/index.js';
import { parse, type Reply, RespClient } from './resp.js';

const NUTCRACKER = process.env['DC_NUTCRACKER'] ?? '/usr/sbin/nutcracker';
const skip = process.env['DC_SKIP_NUTCRACKER'] === '1';
const HASHES: HashName[] = ['murmur', 'fnv1a_64', 'md5'];

if (!skip && !existsSync(NUTCRACKER)) {
  throw new Error(
    `nutcracker (twemproxy) not found at ${NUTCRACKER}: install it (Debian/Ubuntu: ` +
      '`apt-get install nutcracker`), point DC_NUTCRACKER at it, or set DC_SKIP_NUTCRACKER=1',
  );
}

/** Test keys: ASCII, UTF-8, hash-tagged, empty tags, long keys. */
function testKeys(n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    if (i % 10 === 1) return `ключ:${i}:键`;
    if (i % 10 === 2) return `{user${i % 97}}:cart:${i}`;
    if (i % 10 === 3) return `{}empty-tag:${i}`;
    if (i % 10 === 4) return `${'x'.repeat(i % 300)}:${i}`;
    if (i % 10 === 5) return `a}b{c:${i}`;
    return `k:${i}`;
  });
}

const dirs: string[] = [];
const procs: TestProcess[] = [];

async function startNutcracker(
  hash: HashName,
  servers: { address: string; weight: number }[],
): Promise<{ port: number; proc: TestProcess }> {
  const dir = mkdtempSync(join(tmpdir(), 'dc-ring-nc-'));
  dirs.push(dir);
  const port = await freePort();
  const stats = await freePort();
  const conf = [
    'pool:',
    `  listen: 127.0.0.1:${port}`,
    `  hash: ${hash}`,
    '  hash_tag: "{}"',
    '  distribution: ketama',
    '  redis: true',
    '  auto_eject_hosts: false',
    '  timeout: 5000',
    '  servers:',
    ...servers.map((s) => `    - ${s.address}:${s.weight}`),
    '',
  ].join('\n');
  const file = join(dir, 'nutcracker.yml');
  writeFileSync(file, conf);
  const proc = await startProcess(NUTCRACKER, ['-c', file, '-s', String(stats), '-a', '127.0.0.1']);
  procs.push(proc);
  // wait until it accepts connections
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const c = await RespClient.connect('127.0.0.1', port);
      c.close();
      break;
    } catch (e) {
      if (!proc.running) throw new Error(`nutcracker exited: ${proc.output()}`);
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { port, proc };
}

async function setAll(port: number, keys: readonly string[]): Promise<void> {
  const c = await RespClient.connect('127.0.0.1', port);
  try {
    for (let i = 0; i < keys.length; i += 1000) {
      const replies = await c.pipeline(keys.slice(i, i + 1000).map((k) => ['SET', k, '1']));
      for (const r of replies) if (r !== 'OK') throw new Error(`SET via nutcracker: ${String(r)}`);
    }
  } finally {
    c.close();
  }
}

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop(2000)));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe.skipIf(skip)('differential vs real twemproxy (nutcracker), 3 redis-servers', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  });
  afterAll(async () => {
    await cluster?.stopAll();
  });

  for (const hash of HASHES) {
    it(`${hash}: 10,000 keys land where Ring.owner says (weights 1,1,2, hash_tag {})`, async () => {
      const weights = [1, 1, 2];
      const servers = cluster.nodes.map((n, i) => ({ address: n.address, weight: weights[i]! }));
      await Promise.all(cluster.nodes.map((n) => n.flush()));
      const { port, proc } = await startNutcracker(hash, servers);
      const keys = testKeys(10_000);
      await setAll(port, keys);
      await proc.stop(2000);

      // Ring ids = twemproxy server names ("host:port" for plain server lines).
      const ring = new Ring(
        servers.map((s) => ({ id: s.address, weight: s.weight })),
        { hash, hashTag: '{}' },
      );
      const where = new Map<string, string>();
      for (const node of cluster.nodes) {
        const c = await RespClient.connect(node.host, node.port);
        const [stored] = await c.pipeline([['KEYS', '*']]);
        c.close();
        for (const k of stored as string[]) {
          expect(where.has(k), `key ${k} on two nodes`).toBe(false);
          where.set(k, node.address);
        }
      }
      expect(where.size).toBe(new Set(keys).size);
      let mismatches = 0;
      for (const k of keys) if (where.get(k) !== ring.owner(k)) mismatches++;
      expect(mismatches).toBe(0);
      // every node got a share
      expect(new Set(where.values()).size).toBe(3);
    });
  }
});

/**
 * Point-count quirks (float32 arithmetic in nc_ketama.c) need many servers; these
 * only check *placement*, so the servers are in-process RESP listeners that record
 * each key they are sent (real redis-servers are used above).
 */
describe.skipIf(skip)('twemproxy placement with many servers (recording listeners)', () => {
  const listeners: Server[] = [];
  afterAll(() => {
    for (const s of listeners) s.close();
  });

  async function recorder(seen: Map<string, string>, id: string): Promise<number> {
    const srv = createServer((sock) => {
      let buf: Buffer = Buffer.alloc(0);
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        let pos = 0;
        const out: string[] = [];
        for (;;) {
          const r = parse(buf, pos);
          if (!r) break;
          pos = r[1];
          const cmd = r[0] as Reply[];
          if (typeof cmd[1] === 'string') seen.set(cmd[1], id);
          out.push('+OK\r\n');
        }
        buf = buf.subarray(pos);
        if (out.length) sock.write(out.join(''));
      });
      sock.on('error', () => {});
    });
    listeners.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const a = srv.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  const cases: [string, number, (i: number) => number][] = [
    ['7 equal servers (float32 gives 160 points, hashring 156)', 7, () => 1],
    ['25 equal servers (float32 gives 156 points)', 25, () => 1],
    ['10 servers weighted 1..10', 10, (i) => i + 1],
  ];
  for (const [name, n, weightOf] of cases) {
    it(name, async () => {
      const seen = new Map<string, string>();
      const servers: { address: string; weight: number }[] = [];
      for (let i = 0; i < n; i++) {
        const port = await recorder(seen, `#${i}`);
        servers.push({ address: `127.0.0.1:${port}`, weight: weightOf(i) });
      }
      const byId = new Map(servers.map((s, i) => [`#${i}`, s.address]));
      const { port, proc } = await startNutcracker('murmur', servers);
      const keys = testKeys(5000);
      await setAll(port, keys);
      await proc.stop(2000);
      const ring = new Ring(
        servers.map((s): RingNodeInput => ({ id: s.address, weight: s.weight })),
        { hashTag: '{}' },
      );
      let mismatches = 0;
      for (const k of keys) if (byId.get(seen.get(k) ?? '') !== ring.owner(k)) mismatches++;
      expect(mismatches).toBe(0);
    });
  }
});
