import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerCleanup } from './cleanup.js';
import { freePort } from './ports.js';
import { startProcess, type TestProcess } from './process.js';
import { waitFor } from './wait.js';

/** The built proxy entry point of this repository. */
export const PROXY_MAIN = fileURLToPath(new URL('../../proxy/dist/main.js', import.meta.url));

/** Settings every test proxy gets: loopback only, quick peer rounds, logs at info. */
export const CLUSTER_TEST_ENV: Readonly<Record<string, string>> = {
  DC_SERVER_HOST: '127.0.0.1',
  DC_LOGGER_LEVEL: 'info',
  DC_CLUSTER_SYNC_INTERVAL: '200ms',
};

/** CI runs on 2 busy cores: no Redis timeout or ejection from load alone (tests override). */
export const CI_SAFE_ENV: Readonly<Record<string, string>> = {
  DC_CACHE_COMMAND_TIMEOUT: '5s',
  DC_HEALTH_INTERVAL: '2s',
  DC_HEALTH_TIMEOUT: '2s',
  DC_HEALTH_FAILURE_THRESHOLD: '5',
};

/** Health settings for fault tests: fast probes, so ejection and re-add take a second or two. */
export const FAST_HEALTH: Readonly<Record<string, string>> = {
  DC_HEALTH_INTERVAL: '200ms',
  DC_HEALTH_TIMEOUT: '150ms',
  DC_HEALTH_FAILURE_THRESHOLD: '3',
  DC_HEALTH_SUCCESS_THRESHOLD: '2',
  DC_HEALTH_RETRY_INTERVAL: '300ms',
  DC_CACHE_COMMAND_TIMEOUT: '500ms',
  DC_CACHE_CONNECT_TIMEOUT: '500ms',
};

/** Peer sync is on: a token and at least one peer. */
function peered(env: Record<string, string>): boolean {
  return (env.DC_CLUSTER_TOKEN ?? '') !== '' && (env.DC_CLUSTER_PEERS ?? '') !== '';
}

/** A proxy process on a loopback port. */
export interface SpawnedProxy {
  proc: TestProcess;
  port: number;
  url: string;
  env: Record<string, string>;
}

/** Options of `spawnProxy`. */
export interface SpawnProxyOptions {
  /** Port (default a free one). */
  port?: number;
  /** Entry point (default this repository's built proxy). */
  main?: string;
  /**
   * Path answered before it counts as started: default /health/ready for a peered proxy (it
   * answers 503 until it met its peers), else /health/live.
   */
  readyPath?: string;
  readyTimeout?: number;
}

/**
 * Start one proxy process (`node packages/proxy/dist/main.js`) from DC_* settings on 127.0.0.1;
 * resolves when `readyPath` answers. The one launcher every process test goes through.
 */
export async function spawnProxy(
  env: Record<string, string>,
  opts: SpawnProxyOptions = {},
): Promise<SpawnedProxy> {
  const port = opts.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const full: Record<string, string> = {
    DC_CONFIG: '',
    DC_SERVER_HOST: '127.0.0.1',
    DC_LOGGER_LEVEL: 'warn',
    ...env,
    DC_SERVER_PORT: String(port),
  };
  const readyPath = opts.readyPath ?? (peered(full) ? '/health/ready' : '/health/live');
  const readyTimeout = opts.readyTimeout ?? 30_000;
  // startProcess counts any answer but a 5xx other than 503 as started (/health answers 503
  // while every node is down); /health/ready must answer 200.
  const proc = await startProcess(process.execPath, [opts.main ?? PROXY_MAIN], {
    env: full,
    readyUrl: `${url}${readyPath === '/health/ready' ? '/health/live' : readyPath}`,
    readyTimeout,
  });
  if (readyPath === '/health/ready') {
    await waitFor(
      async () => {
        if (!proc.running)
          throw new Error(`proxy on ${port} exited before ready:\n${proc.output()}`);
        try {
          const r = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(1_000) });
          await r.arrayBuffer();
          return r.status === 200;
        } catch {
          return false;
        }
      },
      { timeout: readyTimeout, interval: 20, message: `${url}/health/ready to answer 200` },
    );
  }
  return { proc, port, url, env: full };
}

/** One proxy process of a cluster: stop, kill, pause and restart it with the same settings. */
export interface ClusterProxy {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  readonly env: Record<string, string>;
  readonly proc: TestProcess;
  /** Everything it printed, across restarts. */
  output(): string;
  /** SIGTERM and wait for the exit (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<number | string>;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT. */
  pause(): void;
  resume(): void;
  /** Start it again with the same settings (after stop or kill). */
  restart(): Promise<void>;
}

/** Options of `startProxyCluster`. */
export interface ProxyClusterOptions {
  /** Number of proxies (each peers with all the others). */
  proxies: number;
  /** DC_CACHE_ADDRESSES. */
  addresses: readonly string[];
  /** Settings for every proxy (over CLUSTER_TEST_ENV). */
  env?: Record<string, string>;
  /** Settings for proxy i (over `env`). */
  envOf?: (i: number) => Record<string, string>;
  /** Cluster token; default a random one. */
  token?: string;
  /** Entry point; default this repository's built proxy. */
  main?: string;
}

/** N proxy processes peered with each other over real sockets, each with its own state file. */
export interface ProxyCluster {
  readonly proxies: readonly ClusterProxy[];
  readonly token: string;
  /** Stop every proxy (SIGCONT first) and delete the state files. */
  close(): Promise<void>;
}

/** Start `proxies` peered proxies over `addresses`, all at once; resolves when all answer. */
export async function startProxyCluster(opts: ProxyClusterOptions): Promise<ProxyCluster> {
  const token = opts.token ?? `t-${Math.random().toString(36).slice(2)}`;
  const dir = mkdtempSync(join(tmpdir(), 'dcache-proxies-'));
  const ports: number[] = [];
  for (let i = 0; i < opts.proxies; i++) ports.push(await freePort());
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const main = opts.main ?? PROXY_MAIN;
  const make = (i: number): Promise<ClusterProxy> => {
    const name = `proxy-${String.fromCharCode(97 + i)}`;
    const url = urls[i] as string;
    const env: Record<string, string> = {
      ...CLUSTER_TEST_ENV,
      DC_SERVER_PORT: String(ports[i]),
      DC_CACHE_ADDRESSES: opts.addresses.join(','),
      DC_CLUSTER_TOKEN: token,
      DC_CLUSTER_NODE_ID: name,
      DC_CLUSTER_ADVERTISE_URL: url,
      DC_CLUSTER_PEERS: urls.filter((_, j) => j !== i).join(','),
      DC_CLUSTER_STATE_FILE: join(dir, `${name}.json`),
      ...opts.env,
      ...opts.envOf?.(i),
    };
    const launch = () => spawnProxy(env, { port: ports[i] as number, main }).then((p) => p.proc);
    return launch().then((first) => {
      let proc = first;
      let before = '';
      const p: ClusterProxy = {
        name,
        url,
        port: ports[i] as number,
        env,
        get proc() {
          return proc;
        },
        output: () => before + proc.output(),
        stop: (graceMs = 10_000) => proc.stop(graceMs),
        async kill() {
          if (!proc.running) return;
          proc.signal('SIGCONT');
          proc.signal('SIGKILL');
          await proc.exited;
        },
        pause: () => proc.signal('SIGSTOP'),
        resume: () => proc.signal('SIGCONT'),
        async restart() {
          if (proc.running) await proc.stop(10_000);
          before += proc.output();
          proc = await launch();
        },
      };
      return p;
    });
  };
  const proxies = await Promise.all(Array.from({ length: opts.proxies }, (_, i) => make(i)));
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    for (const p of proxies) if (p.proc.running) p.resume();
    await Promise.allSettled(proxies.map((p) => p.stop(5_000)));
    rmSync(dir, { recursive: true, force: true });
  };
  registerCleanup(close);
  return { proxies, token, close };
}
