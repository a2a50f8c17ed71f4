import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import {
  cleanupAll,
  dockerAvailable,
  dockerSocketPath,
  freePort,
  redisServerBin,
  startRedis,
  startRedisCluster,
  startRedisContainer,
} from '../src/index.js';

afterAll(cleanupAll);

describe('redis-server fixture', () => {
  it('finds redis-server', () => {
    expect(redisServerBin()).toMatch(/redis-server/);
  });

  it('starts N nodes on distinct free ports, each answering', async () => {
    const c = await startRedisCluster(3);
    expect(new Set(c.addresses).size).toBe(3);
    for (const n of c.nodes) {
      expect(await n.command('SET', 'k', n.address)).toBe('OK');
      expect(await n.command('GET', 'k')).toBe(n.address);
    }
    await c.stopAll();
    for (const n of c.nodes) expect(n.running).toBe(false);
  });

  it('kill, restart on the same port (empty), flush', async () => {
    const r = await startRedis();
    await r.command('SET', 'a', '1');
    await r.kill();
    expect(r.running).toBe(false);
    await expect(r.command('PING')).rejects.toThrow();
    await r.restart();
    expect(await r.command('GET', 'a')).toBeNull();
    await r.command('SET', 'b', '1');
    await r.flush();
    expect(await r.command('DBSIZE')).toBe(0);
    await r.close();
  });

  it('stop hangs the server, cont resumes it', async () => {
    const r = await startRedis();
    r.stop();
    await expect(r.command('PING')).rejects.toThrow(/timeout/);
    r.cont();
    expect(await r.command('PING')).toBe('PONG');
    await r.close();
  }, 20_000);

  it('requirepass is applied', async () => {
    const r = await startRedis({ password: 's3cret' });
    expect(await r.command('PING')).toBe('PONG');
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    await r.close();
  });

  it('fails with one line naming the fix when redis-server is missing', async () => {
    const { execFileSync } = await import('node:child_process');
    const script = `process.env.REDIS_SERVER_BIN='/nonexistent/redis-server'; process.env.PATH='/nonexistent';
      import('${new URL('../dist/index.js', import.meta.url).href}').then(m => { try { m.redisServerBin(); } catch (e) { console.log(e.message); } });`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script]).toString();
    expect(out.trim().split('\n')).toHaveLength(1);
    expect(out).toMatch(/apt-get install -y redis-server/);
  });
});

const docker = await dockerAvailable();
// The container tier (npm run test:containers) sets DC_REQUIRE_DOCKER=1: there the path must
// run, so a missing engine fails instead of skipping.
const required = process.env.DC_REQUIRE_DOCKER === '1';
describe('testcontainers path', () => {
  it.skipIf(!docker && !required)(
    'starts a Redis container that answers PING (needs a Docker engine; skipped without one)',
    async () => {
      expect(docker, `no Docker engine answers on ${dockerSocketPath()}`).toBe(true);
      const c = await startRedisContainer();
      try {
        expect(c.address).toMatch(/:\d+$/);
        const [host, port] = [
          c.address.slice(0, c.address.lastIndexOf(':')),
          c.address.split(':').pop(),
        ];
        const reply = await new Promise<string>((resolve, reject) => {
          const s = connect(Number(port), host, () => s.write('PING\r\n'));
          s.setTimeout(10_000, () => s.destroy(new Error('no reply to PING')));
          s.once('data', (d) => {
            resolve(d.toString());
            s.end();
          });
          s.once('error', reject);
        });
        expect(reply).toBe('+PONG\r\n');
      } finally {
        await c.stop();
      }
    },
    120_000,
  );
  it('the Docker probe answers false quickly without an engine, true with one', async () => {
    const t = Date.now();
    const again = await dockerAvailable();
    expect(again).toBe(docker);
    expect(Date.now() - t).toBeLessThan(5_000);
  });
  it("finds the engine from DOCKER_SOCKET, then a unix:// DOCKER_HOST, then Docker's socket", () => {
    expect(dockerSocketPath({ DOCKER_SOCKET: '/a.sock', DOCKER_HOST: 'unix:///b.sock' })).toBe(
      '/a.sock',
    );
    expect(dockerSocketPath({ DOCKER_HOST: 'unix:///run/podman/podman.sock' })).toBe(
      '/run/podman/podman.sock',
    );
    expect(dockerSocketPath({ DOCKER_HOST: 'tcp://10.0.0.1:2375' })).toBe('/var/run/docker.sock');
    expect(dockerSocketPath({})).toBe('/var/run/docker.sock');
  });
});
