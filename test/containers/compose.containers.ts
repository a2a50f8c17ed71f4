// The container tier's checks against docker-compose.yml brought up for real (podman, local
// Debian-built images) by scripts/containers/run.sh, which passes the stack in DC_CT_* variables.
// Published ports are the compose file's own: proxies on 127.0.0.1:8080/8082, nginx on :80,
// Prometheus on 127.0.0.1:9090.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this file through npm run test:containers`);
  return v;
};

const PROXY_1 = 'http://127.0.0.1:8080';
const PROXY_2 = 'http://127.0.0.1:8082';
const NGINX = 'http://127.0.0.1:80';
const PROMETHEUS = 'http://127.0.0.1:9090';

interface Answer {
  status: number;
  body: unknown;
  text: string;
}

/** One HTTP call; the body is parsed as JSON when it is JSON. */
async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const init: RequestInit = { method, headers, signal: AbortSignal.timeout(30_000) };
  if (body !== undefined) {
    init.headers = { 'content-type': 'application/json', ...headers };
    init.body = JSON.stringify(body);
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    // not JSON (e.g. HEAD, /metrics)
  }
  return { status: res.status, body: parsed, text };
}

/** Poll `check` until it returns a value other than undefined (bounded; errors count as not yet). */
async function waitFor<T>(what: string, check: () => Promise<T | undefined>, ms = 120_000) {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/** docker-compose with the project, env file and profiles run.sh brought the stack up with. */
async function compose(...args: string[]): Promise<string> {
  const base = JSON.parse(env('DC_CT_COMPOSE_ARGS')) as string[];
  const { stdout } = await run('docker-compose', [...base, ...args], {
    env: process.env,
    timeout: 120_000,
  });
  return stdout;
}

const ready = async (base: string) =>
  (await call(base, 'GET', '/health/ready')).status === 200 ? true : undefined;

const admin = () => ({ authorization: `Bearer ${env('DC_CT_ADMIN_TOKEN')}` });

interface RingNode {
  id: string;
  address: string;
  weight: number;
}
interface Ring {
  version: unknown;
  nodes: RingNode[];
}

beforeAll(async () => {
  for (const base of [PROXY_1, PROXY_2]) await waitFor(`${base} ready`, () => ready(base));
  await waitFor('nginx', async () =>
    (await call(NGINX, 'GET', '/nginx-health')).status === 200 ? true : undefined,
  );
});

describe("the seed README's curls against cache-server (127.0.0.1:8080)", () => {
  it('PUT, GET, HEAD and DELETE one key', async () => {
    const put = await call(PROXY_1, 'PUT', '/api/v1/cache/mi_clave', {
      value: 'mi_valor',
      ttl: '1h',
    });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ key: 'mi_clave', ttl_ms: 3_600_000 });
    expect(await call(PROXY_1, 'GET', '/api/v1/cache/mi_clave')).toMatchObject({
      status: 200,
      body: { key: 'mi_clave', value: 'mi_valor' },
    });
    expect((await call(PROXY_1, 'HEAD', '/api/v1/cache/mi_clave')).status).toBe(200);
    expect(await call(PROXY_1, 'DELETE', '/api/v1/cache/mi_clave')).toMatchObject({
      status: 200,
      body: { key: 'mi_clave', deleted: true },
    });
    expect((await call(PROXY_1, 'HEAD', '/api/v1/cache/mi_clave')).status).toBe(404);
    const gone = await call(PROXY_1, 'GET', '/api/v1/cache/mi_clave');
    expect(gone.status).toBe(404);
    expect(gone.body).toMatchObject({ error: { code: 'KEY_NOT_FOUND' } });
  });

  it('batch set, batch get, batch delete, keys, stats', async () => {
    const set = await call(PROXY_1, 'POST', '/api/v1/cache/batch', {
      items: {
        clave1: { value: 'valor1', ttl: '30m' },
        clave2: { value: 'valor2', ttl: '1h' },
        clave3: { value: 'valor3' },
      },
    });
    expect(set).toMatchObject({ status: 200, body: { stored: 3, failed: {} } });
    const got = await call(PROXY_1, 'POST', '/api/v1/cache/batch/get', {
      keys: ['clave1', 'clave2', 'clave3'],
    });
    expect(got).toMatchObject({
      status: 200,
      body: { items: { clave1: 'valor1', clave2: 'valor2', clave3: 'valor3' }, missing: [] },
    });
    const del = await call(PROXY_1, 'DELETE', '/api/v1/cache/batch', {
      keys: ['clave1', 'clave2'],
    });
    expect(del).toMatchObject({ status: 200, body: { deleted: 2, failed: {} } });
    const keys = await call(PROXY_1, 'GET', '/api/v1/cache/keys?pattern=*');
    expect(keys.status).toBe(200);
    const listed = (keys.body as { keys: string[] }).keys;
    expect(listed).toContain('clave3');
    expect(listed).not.toContain('clave1');
    const stats = await call(PROXY_1, 'GET', '/api/v1/cache/stats');
    expect(stats.status).toBe(200);
    expect(stats.text).toMatch(/redis-1/);
    expect(stats.text).toMatch(/redis-3/);
  });

  it('health shows the three Redis containers; flush needs the admin token', async () => {
    const health = await call(PROXY_1, 'GET', '/health');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'ok' });
    expect((health.body as { nodes: unknown[] }).nodes).toHaveLength(3);
    const anonymous = await call(PROXY_1, 'DELETE', '/api/v1/cache/');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
    expect(await call(PROXY_1, 'DELETE', '/api/v1/cache/', undefined, admin())).toMatchObject({
      status: 200,
      body: { flushed_nodes: 3 },
    });
    expect((await call(PROXY_1, 'GET', '/api/v1/cache/clave3')).status).toBe(404);
  });

  it('both proxies and nginx serve the same keys', async () => {
    await call(PROXY_1, 'PUT', '/api/v1/cache/shared', { value: { n: 1 } });
    for (const base of [PROXY_2, NGINX]) {
      expect(await call(base, 'GET', '/api/v1/cache/shared')).toMatchObject({
        status: 200,
        body: { value: { n: 1 } },
      });
    }
    // The balancer never serves the peer exchange.
    expect((await call(NGINX, 'GET', '/internal/v1/membership')).status).toBe(404);
  });
});

describe('a proxy killed behind nginx', () => {
  it('requests through nginx keep being answered while cache-server is down, and it comes back', async () => {
    for (let i = 0; i < 10; i++) {
      const put = await call(NGINX, 'PUT', `/api/v1/cache/lb-${i}`, { value: i });
      expect(put.status).toBe(200);
    }
    await compose('kill', '-s', 'SIGKILL', 'cache-server');
    await waitFor('cache-server to stop answering', async () => {
      try {
        await call(PROXY_1, 'GET', '/health/live');
        return undefined;
      } catch {
        return true;
      }
    });
    // Every request is answered, by cache-server-2 (nginx retries the dead upstream's
    // connection errors on the other one).
    for (let i = 0; i < 10; i++) {
      expect(await call(NGINX, 'GET', `/api/v1/cache/lb-${i}`)).toMatchObject({
        status: 200,
        body: { value: i },
      });
      expect((await call(NGINX, 'PUT', `/api/v1/cache/lb-down-${i}`, { value: i })).status).toBe(
        200,
      );
    }
    const batch = await call(NGINX, 'POST', '/api/v1/cache/batch/get', {
      keys: Array.from({ length: 10 }, (_, i) => `lb-down-${i}`),
    });
    expect(batch.status).toBe(200);
    expect(Object.keys((batch.body as { items: object }).items)).toHaveLength(10);

    await compose('start', 'cache-server');
    await waitFor('cache-server ready again', () => ready(PROXY_1));
    expect(await call(PROXY_1, 'GET', '/api/v1/cache/lb-down-3')).toMatchObject({
      status: 200,
      body: { value: 3 },
    });
  });
});

describe('peer sync between cache-server and cache-server-2', () => {
  const ring = async (base: string) => (await call(base, 'GET', '/api/v1/ring')).body as Ring;
  const weightOf = async (base: string, id: string) =>
    (await ring(base)).nodes.find((n) => n.id === id)?.weight;

  it('a ring change made on one proxy shows on the other, both ways', async () => {
    const before = await ring(PROXY_1);
    expect(before.nodes).toHaveLength(3);
    const node = before.nodes.find((n) => n.address.startsWith('redis-3'));
    expect(node).toBeDefined();
    const id = (node as RingNode).id;
    const path = `/api/v1/ring/nodes/${encodeURIComponent(id)}`;

    const up = await call(PROXY_1, 'PATCH', path, { weight: 2 }, admin());
    expect(up.status).toBe(200);
    await waitFor('cache-server-2 to learn weight 2', async () =>
      (await weightOf(PROXY_2, id)) === 2 ? true : undefined,
    );

    const down = await call(PROXY_2, 'PATCH', path, { weight: 1 }, admin());
    expect(down.status).toBe(200);
    await waitFor('cache-server to learn weight 1', async () =>
      (await weightOf(PROXY_1, id)) === 1 ? true : undefined,
    );
    expect((await ring(PROXY_1)).version).toEqual((await ring(PROXY_2)).version);
  });
});

describe('monitoring profile (Prometheus; Grafana and Redis Commander left out of this run)', () => {
  it('Prometheus scrapes both proxies and loaded the alert rules', async () => {
    await waitFor('both proxies up in Prometheus', async () => {
      const q = await call(PROMETHEUS, 'GET', '/api/v1/query?query=up%7Bjob%3D%22dcache%22%7D');
      const result = (q.body as { data?: { result?: { value: [number, string] }[] } }).data?.result;
      return result?.length === 2 && result.every((r) => r.value[1] === '1') ? true : undefined;
    });
    const rules = await call(PROMETHEUS, 'GET', '/api/v1/rules');
    expect(rules.status).toBe(200);
    const groups = (rules.body as { data: { groups: unknown[] } }).data.groups;
    expect(groups.length).toBeGreaterThan(0);
  });
});
