import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cleanupAll,
  freePort,
  type RedisCluster,
  startProcess,
  startRedisCluster,
} from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN_JS, request } from './helpers.js';

let cluster: RedisCluster;
const dir = mkdtempSync(join(tmpdir(), 'dcache-main-test-'));

beforeAll(async () => {
  cluster = await startRedisCluster(2);
});

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await cleanupAll();
});

/** Run `node dist/main.js` to its end; it must not take long to refuse a bad setting. */
async function runMain(env: Record<string, string>, args: string[] = []) {
  const p = await startProcess(process.execPath, [MAIN_JS, ...args], {
    env: { DC_LOGGER_LEVEL: 'warn', DC_CONFIG: '', ...env },
  });
  const timer = setTimeout(() => p.signal('SIGKILL'), 15_000);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, stderr: p.stderr(), stdout: p.stdout() };
}

// The other bad settings are covered by config.test.ts; these prove the process path end to end.
describe('node dist/main.js refuses a bad setting: exit 2, one stderr line naming it', () => {
  const badYaml = join(dir, 'bad.yaml');
  writeFileSync(badYaml, 'server:\n  port: [1\n');
  const cases: [string, Record<string, string>, string[], string][] = [
    ['DC_SERVER_PORT=abc', { DC_SERVER_PORT: 'abc' }, [], 'DC_SERVER_PORT'],
    [
      'DC_CACHE_ADDRESSES=nohostport',
      { DC_CACHE_ADDRESSES: 'nohostport' },
      [],
      'DC_CACHE_ADDRESSES',
    ],
    [
      'DC_HEALTH_TIMEOUT=5s with interval 1s',
      { DC_HEALTH_TIMEOUT: '5s', DC_HEALTH_INTERVAL: '1s' },
      [],
      'DC_HEALTH_TIMEOUT',
    ],
    ['bad YAML (DC_CONFIG)', { DC_CONFIG: badYaml }, [], 'DC_CONFIG'],
    ['unknown flag', {}, ['--no-such-flag', '1'], '--no-such-flag'],
  ];
  // Concurrent: each case is a node start-up (about a second of module loading).
  it.concurrent.for(cases)('%s', async ([_what, env, args, name], { expect }) => {
    const r = await runMain(env, args);
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain(name);
    expect(lines[0]).toMatch(/^dcache: invalid configuration: /);
    expect(r.stdout).toBe('');
  });
});

describe('precedence in a running process: defaults < YAML < env < flags', () => {
  it('listens on the flag port, not the env or YAML one, and takes the rest from each layer', async () => {
    const [yamlPort, envPort, flagPort] = [await freePort(), await freePort(), await freePort()];
    const file = join(dir, 'layers.yaml');
    writeFileSync(
      file,
      `server:\n  host: 127.0.0.1\n  port: ${yamlPort}\ncache:\n  addresses: [${cluster.addresses.join(', ')}]\n  default_ttl: 1h\nlimits:\n  max_batch_keys: 5\n`,
    );
    const p = await startProcess(process.execPath, [MAIN_JS, '--server-port', String(flagPort)], {
      env: { DC_CONFIG: file, DC_SERVER_PORT: String(envPort), DC_LIMITS_MAX_BATCH_KEYS: '3' },
      readyUrl: `http://127.0.0.1:${flagPort}/health/ready`,
    });
    try {
      const base = `http://127.0.0.1:${flagPort}`;
      // YAML: the nodes and the default TTL.
      const ring = await request(base, 'GET', '/api/v1/ring');
      expect(ring.body.nodes.map((n: { id: string }) => n.id).sort()).toEqual(
        [...cluster.addresses].sort(),
      );
      const put = await request(base, 'PUT', '/api/v1/cache/layered', { json: { value: 1 } });
      expect(put.body).toEqual({ key: 'layered', ttl_ms: 3_600_000 });
      // env over YAML: 3 keys per batch, not 5.
      const four = await request(base, 'POST', '/api/v1/cache/batch/get', {
        json: { keys: ['a', 'b', 'c', 'd'] },
      });
      expect(four.status).toBe(400);
      expect(four.body.error.code).toBe('BATCH_TOO_LARGE');
      expect(
        (
          await request(base, 'POST', '/api/v1/cache/batch/get', {
            json: { keys: ['a', 'b', 'c'] },
          })
        ).status,
      ).toBe(200);
      // Flags over env and YAML: nothing listens on the other two ports.
      for (const port of [yamlPort, envPort]) expect(await listening(port)).toBe(false);
    } finally {
      expect(await p.stop()).toBe(0);
    }
  });
});

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}
