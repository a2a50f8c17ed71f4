// Issue 15 part 6 and review R1, P5: TLS and an ACL user to Redis, against real redis-servers
// started with TLS and ACL users (certificates generated here with openssl), and a node that
// refuses the credentials no longer stops the proxy unless every node refuses them.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CI_SAFE_ENV,
  cleanupAll,
  freePort,
  PROXY_MAIN,
  type RedisServer,
  type SpawnedProxy,
  spawnProxy,
  startProcess,
  startRedis,
  waitFor,
} from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call as jsonCall } from '../reliability/harness.js';

const ADMIN = 'adm-redis-transport-5d1e';
/** Ejection within seconds of a node failing, yet no slow PING on 2 busy cores ejects a good one. */
const QUICK_EJECT = {
  DC_HEALTH_INTERVAL: '1s',
  DC_HEALTH_TIMEOUT: '1s',
  DC_HEALTH_FAILURE_THRESHOLD: '2',
  DC_HEALTH_RETRY_INTERVAL: '300ms',
};
/** The fixture's own ACL user (every command), and the proxy's (only what dcache needs). */
const FIXTURE_USER = 'fixture';
const FIXTURE_PASS = 'fixture-secret-1b9e';
const USER = 'dcache';
const PASS = 'dcache-secret-8c2f4a';
/** The commands docs/operations.md lists for the proxy's ACL user. */
const PROXY_ACL = [
  '~*',
  '-@all',
  '+get',
  '+set',
  '+del',
  '+unlink',
  '+exists',
  '+mget',
  '+pttl',
  '+ttl',
  '+scan',
  '+flushdb',
  '+info',
  '+ping',
  '+role',
  '+select',
  '+client|setname',
];

type Node = {
  id: string;
  healthy: boolean;
  connected: boolean;
  error_class?: string;
  last_error?: string;
  connection_error?: string;
};

/** Certificates for the tests: a CA, a server certificate (127.0.0.1, localhost), a client one. */
interface Pki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** Another CA that signed nothing here: the wrong one to trust. */
  otherCa: string;
}

function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'dcache-pki-'));
  const f = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ca = (name: string) =>
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.crt`),
    );
  const leaf = (name: string, ext: string) => {
    writeFileSync(f(`${name}.ext`), ext);
    ssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.csr`),
    );
    ssl(
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('test-ca.crt'),
      '-CAkey',
      f('test-ca.key'),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      f(`${name}.ext`),
      '-out',
      f(`${name}.crt`),
    );
  };
  ca('test-ca');
  ca('other-ca');
  leaf(
    'server',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n',
  );
  leaf('client', 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
  return {
    dir,
    ca: f('test-ca.crt'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    clientCert: f('client.crt'),
    clientKey: f('client.key'),
    otherCa: f('other-ca.crt'),
  };
}

/** Settings of a proxy on these nodes: TLS with our client certificate, the ACL user. */
function tlsEnv(pki: Pki, addresses: string[], extra: Record<string, string> = {}) {
  return {
    ...CI_SAFE_ENV,
    DC_LOGGER_LEVEL: 'info',
    DC_ADMIN_TOKEN: ADMIN,
    DC_CACHE_ADDRESSES: addresses.join(','),
    DC_CACHE_TLS: 'true',
    DC_CACHE_TLS_CA: pki.ca,
    DC_CACHE_TLS_CERT: pki.clientCert,
    DC_CACHE_TLS_KEY: pki.clientKey,
    DC_CACHE_USERNAME: USER,
    DC_CACHE_PASSWORD: PASS,
    DC_CACHE_CONNECT_TIMEOUT: '2s',
    DC_HEALTH_RETRY_INTERVAL: '300ms',
    ...extra,
  };
}

/** One JSON call with an optional body and bearer token (the harness' call, positional). */
const call = (url: string, method: string, path: string, body?: unknown, token?: string) =>
  jsonCall(url, method, path, {
    ...(body !== undefined ? { json: body } : {}),
    ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
  });

/** Start the proxy process and expect it to exit: its exit code and stderr. */
async function startExpectingExit(env: Record<string, string>) {
  const p = await startProcess(process.execPath, [PROXY_MAIN], {
    env: {
      DC_CONFIG: '',
      DC_SERVER_HOST: '127.0.0.1',
      DC_SERVER_PORT: String(await freePort()),
      DC_LOGGER_LEVEL: 'info',
      ...env,
    },
  });
  const timer = setTimeout(() => p.signal('SIGKILL'), 30_000);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, stderr: p.stderr(), output: p.output() };
}

/** A plain TCP client's first reply from a Redis port (a TLS-only port answers nothing usable). */
function plainPing(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    let got = '';
    const t = setTimeout(() => {
      s.destroy();
      resolve(got);
    }, 2_000);
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      got += d.toString();
    });
    s.on('close', () => {
      clearTimeout(t);
      resolve(got);
    });
    s.on('error', () => {});
  });
}

describe('TLS and an ACL user to Redis', () => {
  let pki: Pki;
  let nodes: RedisServer[];

  beforeAll(async () => {
    pki = makePki();
    const tls = {
      cert: pki.serverCert,
      key: pki.serverKey,
      ca: pki.ca,
      // Client certificates required: the proxy must present ours.
      authClients: 'yes' as const,
      clientCert: pki.clientCert,
      clientKey: pki.clientKey,
    };
    nodes = await Promise.all([
      startRedis({ tls, username: FIXTURE_USER, password: FIXTURE_PASS }),
      startRedis({ tls, username: FIXTURE_USER, password: FIXTURE_PASS }),
    ]);
    for (const n of nodes)
      expect(await n.command('ACL', 'SETUSER', USER, 'on', `>${PASS}`, ...PROXY_ACL)).toBe('OK');
  });

  afterAll(async () => {
    await cleanupAll();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  it('the nodes speak TLS only and the default user is off', async () => {
    for (const n of nodes) {
      expect(await plainPing(n.port)).not.toContain('PONG');
      const who = await n.command('ACL', 'WHOAMI');
      expect(who).toBe(FIXTURE_USER);
      const def = await n.command('ACL', 'GETUSER', 'default');
      expect(JSON.stringify(def)).toContain('off');
    }
  });

  it('a proxy serves over TLS as an ACL user with only the documented commands, with its client certificate', async () => {
    const p = await spawnProxy(
      tlsEnv(
        pki,
        nodes.map((n) => n.address),
      ),
    );
    try {
      const health = await call(p.url, 'GET', '/health');
      expect(health.status).toBe(200);
      expect(health.body.status).toBe('ok');
      for (const n of health.body.nodes as Node[]) {
        expect(n.connected).toBe(true);
        expect(n.error_class).toBeUndefined();
      }
      for (let i = 0; i < 40; i++) {
        const put = await call(p.url, 'PUT', `/api/v1/cache/tls:${i}`, { value: { i }, ttl: '1h' });
        expect(put.status).toBe(200);
      }
      for (let i = 0; i < 40; i++) {
        const got = await call(p.url, 'GET', `/api/v1/cache/tls:${i}`);
        expect(got.status).toBe(200);
        expect(got.body.value).toEqual({ i });
      }
      // The other paths the ACL list must cover: batches, HEAD, listing, stats (INFO), delete.
      const items = Object.fromEntries(
        Array.from({ length: 20 }, (_, i) => [`b:${i}`, { value: i, ttl: '1h' }]),
      );
      expect((await call(p.url, 'POST', '/api/v1/cache/batch', { items })).status).toBe(200);
      const batch = await call(p.url, 'POST', '/api/v1/cache/batch/get', {
        keys: Object.keys(items),
      });
      expect(Object.keys(batch.body.items)).toHaveLength(20);
      expect((await fetch(`${p.url}/api/v1/cache/b:1`, { method: 'HEAD' })).status).toBe(200);
      const keys = await call(p.url, 'GET', '/api/v1/cache/keys?pattern=tls:*&limit=100');
      expect(keys.body.keys).toHaveLength(40);
      const stats = await call(p.url, 'GET', '/api/v1/cache/stats');
      expect(stats.body.total.keys).toBe(60);
      expect((await call(p.url, 'DELETE', '/api/v1/cache/tls:0')).status).toBe(200);
      // Every node holds some keys; the proxy's connections are TLS ones of the ACL user.
      for (const n of nodes) {
        const keys = await n.command('DBSIZE');
        expect(keys).toBeGreaterThan(0);
        const list = String(await n.command('CLIENT', 'LIST'));
        const ours = list.split('\n').filter((l) => l.includes('name=dcache'));
        expect(ours.length).toBeGreaterThan(0);
        for (const l of ours) expect(l).toContain(`user=${USER}`);
      }
      expect(p.proc.output()).not.toContain(PASS);
      // Flush (admin): FLUSHDB ASYNC on every node.
      const flush = await call(p.url, 'DELETE', '/api/v1/cache/', undefined, ADMIN);
      expect(flush.body).toEqual({ flushed_nodes: 2, failed: {} });
      for (const n of nodes) expect(await n.command('DBSIZE')).toBe(0);
    } finally {
      await p.proc.stop();
    }
  });

  it.for([
    [
      'a CA that did not sign the node certificates',
      (pki: Pki) => ({ DC_CACHE_TLS_CA: pki.otherCa }),
    ],
    [
      'a servername the node certificates do not carry',
      () => ({ DC_CACHE_TLS_SERVERNAME: 'redis.wrong.example' }),
    ],
  ] as const)(
    '%s: nodes unavailable (class tls, detail for admins), the proxy runs on',
    async ([, settings]) => {
      let p: SpawnedProxy | undefined;
      try {
        p = await spawnProxy(
          tlsEnv(
            pki,
            nodes.map((n) => n.address),
            { ...settings(pki), ...QUICK_EJECT },
          ),
        );
        const proxy = p;
        await waitFor(async () => (await call(proxy.url, 'GET', '/health')).status === 503, {
          timeout: 30_000,
          message: '/health to say down',
        });
        const anon = await call(proxy.url, 'GET', '/health');
        expect(anon.body.status).toBe('down');
        for (const n of anon.body.nodes as Node[]) {
          expect(n).toMatchObject({ healthy: false, connected: false, error_class: 'tls' });
          expect(n.last_error).toBeUndefined();
          expect(n.connection_error).toBeUndefined();
        }
        const admin = await call(proxy.url, 'GET', '/health', undefined, ADMIN);
        for (const n of admin.body.nodes as Node[])
          expect(n.connection_error).toMatch(/certificate|altnames/i);
        // Requests get a clear 503, the process stays up; the start-up log says why.
        const r = await call(proxy.url, 'GET', '/api/v1/cache/some-key');
        expect(r.status).toBe(503);
        expect(proxy.proc.running).toBe(true);
        const warned = proxy.proc
          .output()
          .split('\n')
          .filter((l) => l.includes('node not reachable at start'));
        expect(warned).toHaveLength(nodes.length);
        for (const l of warned) expect(l).toContain('"class":"tls"');
      } finally {
        await p?.proc.stop();
      }
    },
  );

  it('no client certificate where the nodes require one: class tls, no crash', async () => {
    const env: Record<string, string> = tlsEnv(
      pki,
      nodes.map((n) => n.address),
    );
    delete env.DC_CACHE_TLS_CERT;
    delete env.DC_CACHE_TLS_KEY;
    const p = await spawnProxy({
      ...env,
      ...QUICK_EJECT,
    });
    try {
      await waitFor(async () => (await call(p.url, 'GET', '/health')).status === 503, {
        timeout: 30_000,
        message: '/health to say down',
      });
      const anon = await call(p.url, 'GET', '/health');
      for (const n of anon.body.nodes as Node[])
        expect(n).toMatchObject({ connected: false, error_class: 'tls' });
      const admin = await call(p.url, 'GET', '/health', undefined, ADMIN);
      for (const n of admin.body.nodes as Node[])
        expect(n.connection_error).toMatch(/alert certificate required/);
      expect(p.proc.running).toBe(true);
    } finally {
      await p.proc.stop();
    }
  });

  it('a wrong ACL password is refused like WRONGPASS: exit naming DC_CACHE_USERNAME', async () => {
    const env = tlsEnv(
      pki,
      nodes.map((n) => n.address),
      { DC_CACHE_PASSWORD: 'not-alices-password' },
    );
    const r = await startExpectingExit(env);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBe('SIGKILL');
    const last = r.stderr.trim().split('\n');
    expect(last).toHaveLength(1);
    expect(last[0]).toMatch(/DC_CACHE_USERNAME/);
    expect(last[0]).toMatch(/WRONGPASS/);
    expect(last[0]).toContain(`"${USER}"`);
    expect(r.output).not.toContain('not-alices-password');
  });
});

describe('credentials refused by some nodes only (review P5)', () => {
  const password = 'redis-pw-good-3e1a';
  let good: RedisServer;
  let other: RedisServer;

  beforeAll(async () => {
    good = await startRedis({ password });
    // A node added with another requirepass (or a hostile one answering WRONGPASS).
    other = await startRedis({ password: 'a-different-password' });
  });

  afterAll(async () => {
    await cleanupAll();
  });

  it('one node refusing: the proxy starts, serves the good node, reports the bad one as auth', async () => {
    const p = await spawnProxy({
      ...CI_SAFE_ENV,
      DC_LOGGER_LEVEL: 'info',
      DC_ADMIN_TOKEN: ADMIN,
      DC_CACHE_ADDRESSES: `${good.address},${other.address}`,
      DC_CACHE_PASSWORD: password,
      ...QUICK_EJECT,
    });
    try {
      // The start-up log names the refusing node and the setting, as an error.
      const out = p.proc.output();
      const line = out.split('\n').find((l) => l.includes('refused the credentials')) ?? '';
      expect(line).toContain(other.address);
      expect(line).not.toContain(good.address);
      expect(line).toContain('DC_CACHE_PASSWORD');
      expect(line).toContain('"level":50');

      await waitFor(
        async () => {
          const h = await call(p.url, 'GET', '/health');
          return (h.body.nodes as Node[]).some((n) => n.id === other.address && !n.healthy);
        },
        { timeout: 30_000, message: 'the refusing node to be ejected' },
      );
      const h = await call(p.url, 'GET', '/health');
      expect(h.status).toBe(200);
      expect(h.body.status).toBe('degraded');
      const bad = (h.body.nodes as Node[]).find((n) => n.id === other.address) as Node;
      expect(bad.error_class).toBe('auth');
      expect(bad.last_error).toBeUndefined();
      const admin = await call(p.url, 'GET', '/health', undefined, ADMIN);
      const badAdmin = (admin.body.nodes as Node[]).find((n) => n.id === other.address) as Node;
      expect(badAdmin.connection_error).toMatch(/WRONGPASS|invalid password/);

      // Every key is served (the good node takes the keys of the ejected one).
      for (let i = 0; i < 30; i++)
        expect((await call(p.url, 'PUT', `/api/v1/cache/p5:${i}`, { value: i })).status).toBe(200);
      for (let i = 0; i < 30; i++)
        expect((await call(p.url, 'GET', `/api/v1/cache/p5:${i}`)).body.value).toBe(i);
      expect(await good.command('DBSIZE')).toBe(30);
      expect(p.proc.output()).not.toContain(password);
    } finally {
      await p.proc.stop();
    }
  });

  it('every node refusing: exit, one line naming DC_CACHE_PASSWORD', async () => {
    const r = await startExpectingExit({
      DC_CACHE_ADDRESSES: `${good.address},${other.address}`,
      DC_CACHE_PASSWORD: 'neither-password',
    });
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBe('SIGKILL');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('DC_CACHE_PASSWORD');
    expect(lines[0]).toContain(good.address);
    expect(lines[0]).toContain(other.address);
    expect(r.output).not.toContain('neither-password');
  });
});
