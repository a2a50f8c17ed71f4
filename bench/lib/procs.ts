/** Servers under test (dcache, the minimal server, webdis), CPU pinning and /proc readings. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, type RedisServer, startProcess, type TestProcess } from '@dcache/test-utils';

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root. */
export const ROOT = join(here, '..', '..');
/** The proxy entry point, as production runs it. */
export const PROXY_MAIN = join(ROOT, 'packages', 'proxy', 'dist', 'main.js');

/** Core of the server under test (and Redis), core of the load generator. */
export const CORES = { server: 0, load: 1 } as const;

/** Pin a running process (all its threads) to one core. */
export function pin(pid: number | undefined, core: number): void {
  if (pid === undefined) throw new Error('no pid to pin');
  execFileSync('taskset', ['-a', '-pc', String(core), String(pid)], { stdio: 'ignore' });
}

/** Pin every node of a Redis cluster to the server core (Redis shares it with the server). */
export function pinRedis(nodes: readonly RedisServer[]): void {
  for (const n of nodes) pin(n.pid, CORES.server);
}

/** utime + stime of a process in clock ticks (0 when it is gone). */
export function cpuTicks(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** Busy and total jiffies of one core from /proc/stat. */
export interface CoreTicks {
  busy: number;
  total: number;
}

/** Per-core busy/total jiffies, indexed by core number. */
export function coreTicks(): CoreTicks[] {
  const out: CoreTicks[] = [];
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    const v = m[2]!.trim().split(/\s+/).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    out[Number(m[1])] = { busy: total - idle, total };
  }
  return out;
}

/** Resident set size of a process in bytes (NaN when it is gone). */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** A server under test. */
export interface Server {
  name: string;
  url: string;
  pid: number;
  proc: TestProcess;
  stop(): Promise<void>;
}

/** Options of {@link startProxy}. */
export interface ProxyOptions {
  /** Extra DC_* settings. */
  env?: Record<string, string>;
  /** Write a V8 CPU profile (.cpuprofile) into this directory when the proxy exits. */
  profileDir?: string;
  /** Another build's `main.js` (default: this tree's packages/proxy/dist/main.js). */
  main?: string;
  /** The server's name in reports (default `dcache`). */
  name?: string;
  /** Run under this command instead of `taskset` (e.g. valgrind and its options). */
  wrap?: readonly string[];
}

/** `taskset -c <server core>`, or the given wrapper, then node. */
function launcher(wrap: readonly string[] | undefined): [string, string[]] {
  const w = wrap ?? ['taskset', '-c', String(CORES.server)];
  return [w[0] as string, [...w.slice(1), process.execPath]];
}

let extraProxyEnv: Record<string, string> = {};

/** Settings added to every proxy this run starts (`--proxy-env=K=V,...`, for experiments). */
export function setProxyEnv(env: Record<string, string>): void {
  extraProxyEnv = env;
}

/** `node packages/proxy/dist/main.js` pinned to the server core, logging at warn. */
export async function startProxy(addresses: string, opts: ProxyOptions = {}): Promise<Server> {
  const main = opts.main ?? PROXY_MAIN;
  if (!existsSync(main)) throw new Error(`${main} is missing: run npm run build first`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const prof = opts.profileDir ? ['--cpu-prof', '--cpu-prof-dir', opts.profileDir] : [];
  const [cmd, pre] = launcher(opts.wrap);
  const proc = await startProcess(cmd, [...pre, ...prof, main], {
    cwd: ROOT,
    env: {
      DC_CACHE_ADDRESSES: addresses,
      DC_SERVER_HOST: '127.0.0.1',
      DC_SERVER_PORT: String(port),
      DC_LOGGER_LEVEL: 'warn',
      ...extraProxyEnv,
      ...opts.env,
    },
    readyUrl: `${url}/health`,
    readyTimeout: opts.wrap ? 900_000 : 30_000,
  });
  const name = opts.name ?? 'dcache';
  return { name, url, pid: proc.pid!, proc, stop: async () => void (await proc.stop()) };
}

/** bench/baselines/minimal-server.ts (node:http + ioredis) over one Redis, pinned to the server core. */
export function startMinimal(redisAddress: string, wrap?: readonly string[]): Promise<Server> {
  return startBaseline('minimal', 'minimal-server.ts', redisAddress, wrap);
}

/** The minimal server with another Redis client (`ioredis`, `node-redis` or `dcache`). */
export function startMinimalWith(client: string, redisAddress: string): Promise<Server> {
  return startBaseline(`minimal-${client}`, 'minimal-server.ts', redisAddress, undefined, {
    CLIENT: client,
  });
}

/** bench/baselines/fastify-server.ts (bare Fastify + ioredis) over one Redis, pinned to the server core. */
export function startFastifyBaseline(redisAddress: string): Promise<Server> {
  return startBaseline('fastify', 'fastify-server.ts', redisAddress);
}

async function startBaseline(
  name: string,
  file: string,
  redisAddress: string,
  wrap?: readonly string[],
  env: Record<string, string> = {},
): Promise<Server> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const [cmd, pre] = launcher(wrap);
  const proc = await startProcess(
    cmd,
    [...pre, '--import', 'tsx', join(here, '..', 'baselines', file)],
    {
      cwd: join(here, '..'),
      env: { PORT: String(port), REDIS_ADDRESS: redisAddress, ...env },
      readyUrl: `${url}/ready`,
      readyTimeout: wrap ? 900_000 : 30_000,
    },
  );
  return { name, url, pid: proc.pid!, proc, stop: async () => void (await proc.stop()) };
}

/** The webdis binary, when installed (DC_WEBDIS_BIN overrides). */
export function webdisBin(): string | undefined {
  const c = process.env.DC_WEBDIS_BIN ?? '/usr/bin/webdis';
  return existsSync(c) ? c : undefined;
}

/** webdis in front of one Redis on a free port, pinned to the server core; undefined when not installed. */
export async function startWebdis(redis: RedisServer): Promise<Server | undefined> {
  const bin = webdisBin();
  if (!bin) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'dcache-webdis-'));
  const port = await freePort();
  const cfg = join(dir, 'webdis.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      redis_host: redis.host,
      redis_port: redis.port,
      redis_auth: null,
      http_host: '127.0.0.1',
      http_port: port,
      threads: 2,
      pool_size: 4,
      daemonize: false,
      websockets: false,
      database: 0,
      verbosity: 0,
      logfile: join(dir, 'webdis.log'),
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const proc = await startProcess('taskset', ['-c', String(CORES.server), bin, cfg], {
    cwd: dir,
    readyUrl: `${url}/PING`,
    readyTimeout: 15_000,
  });
  return {
    name: 'webdis',
    url,
    pid: proc.pid!,
    proc,
    stop: async () => {
      await proc.stop(2_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Store `keys` with the given JSON value text through a dcache proxy (batch calls of 500). */
export async function seed(url: string, keys: readonly string[], value: unknown): Promise<void> {
  for (let i = 0; i < keys.length; i += 500) {
    const items = Object.fromEntries(keys.slice(i, i + 500).map((k) => [k, { value }]));
    const r = await fetch(`${url}/api/v1/cache/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ items }),
      signal: AbortSignal.timeout(10_000),
    });
    const body = await r.text();
    if (r.status !== 200) throw new Error(`seeding failed: ${r.status} ${body}`);
  }
}
