import { createConnection } from 'node:net';
import { DcacheClient, type Health, type RingView } from '@dcache/client';
import { cleanupAll, freePort, startProcess, startRedisCluster, waitFor } from '@dcache/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, cleanEnv, dcache, json, TOKEN } from './helpers.js';

afterAll(cleanupAll);

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => {
      s.end();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

describe('dcache serve and dev', () => {
  it('serve runs a proxy from flags (flags beat env); SIGTERM stops it with exit 0', async () => {
    const cluster = await startRedisCluster(2);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const proc = await startProcess(
      'node',
      [
        BIN,
        'serve',
        '--server-host',
        '127.0.0.1',
        '--server-port',
        String(port),
        '--cache-addresses',
        cluster.addressList,
        '--admin-token',
        TOKEN,
        '--logger-level',
        'warn',
      ],
      {
        // The flag wins over the environment.
        env: { ...cleanEnv(), DC_SERVER_PORT: '1', DC_CACHE_ADDRESSES: '127.0.0.1:1' },
        readyUrl: `${url}/health`,
      },
    );
    try {
      const [h, ring] = await Promise.all([
        dcache(['--url', url, '--json', 'health']),
        dcache(['--url', url, '--json', 'ring', 'list']),
      ]);
      expect(h.code).toBe(0);
      expect(json<Health>(h)).toMatchObject({ status: 'ok', ring: { nodes: 2, serving: 2 } });
      expect(
        json<RingView>(ring)
          .nodes.map((n) => n.id)
          .sort(),
      ).toEqual([...cluster.addresses].sort());
      const c = new DcacheClient({ url, token: TOKEN });
      expect(await c.flush()).toMatchObject({ flushed_nodes: 2 });
      await c.close();
    } finally {
      expect(await proc.stop(10_000)).toBe(0);
      await cluster.stopAll();
    }
  });

  it('serve refuses a bad setting with exit 2 and one line naming it; unknown flags too', async () => {
    const [bad, unknown, help] = await Promise.all([
      dcache(['serve', '--server-port', 'eighty']),
      dcache(['serve', '--bogus-setting', '1']),
      dcache(['serve', '--help']),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      'error CONFIG: invalid configuration: --server-port: must be an integer, got "eighty"\n',
    );
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^error USAGE: Unknown arguments?: .*bogus-setting/);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--cache-addresses');
    expect(help.stdout).toContain('(env DC_CACHE_ADDRESSES)');
    expect(help.stdout).toContain('--health-failure-threshold');
  });

  it('dev starts N local redis-servers and a proxy; SIGTERM stops both', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const proc = await startProcess(
      'node',
      [
        BIN,
        'dev',
        '--nodes',
        '2',
        '--server-host',
        '127.0.0.1',
        '--server-port',
        String(port),
        '--logger-level',
        'warn',
      ],
      { env: cleanEnv(), readyUrl: `${url}/health` },
    );
    let ports: number[] = [];
    try {
      const m = /started 2 local redis-servers: (\S+), (\S+)\n/.exec(proc.stderr());
      expect(m, proc.output()).not.toBeNull();
      ports = [m?.[1], m?.[2]].map((a) => Number(a?.split(':')[1]));
      const h = await dcache(['--url', url, '--json', 'health']);
      expect(h.code).toBe(0);
      const health = json<Health>(h);
      expect(health.status).toBe('ok');
      expect(health.nodes.map((n) => n.address).sort()).toEqual(
        ports.map((p) => `127.0.0.1:${p}`).sort(),
      );
      const set = await dcache(['--url', url, 'set', 'dev:k', '"v"']);
      expect(set.code).toBe(0);
    } finally {
      expect(await proc.stop(10_000)).toBe(0);
    }
    for (const p of ports) {
      await waitFor(async () => !(await listening(p)), {
        timeout: 10_000,
        message: `redis-server on ${p} to stop with dcache dev`,
      });
    }
    const bad = await dcache(['dev', '--nodes', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error USAGE: --nodes must be an integer from 1 to 16, got 0\n/);
  });
});
