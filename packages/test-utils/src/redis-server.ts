import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { registerCleanup, trackPid } from './cleanup.js';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

/** TLS of a fixture redis-server: it then listens with TLS only (`--port 0 --tls-port`). */
export interface RedisTlsOptions {
  /** PEM files: the server's certificate and key, and the CA that signs client certificates. */
  cert: string;
  key: string;
  ca: string;
  /** `--tls-auth-clients`: `yes` requires a client certificate (default `optional`). */
  authClients?: 'yes' | 'no' | 'optional';
  /** Client certificate and key the fixture's own commands present (needed with `yes`). */
  clientCert?: string;
  clientKey?: string;
}

/** Options for one fixture redis-server. */
export interface RedisServerOptions {
  /** `requirepass` for the server (with `username`: that ACL user's password). */
  password?: string;
  /**
   * An ACL user: created on with `password`, every key, channel and command; the default user is
   * turned off (no `requirepass`). The fixture's own commands authenticate as this user.
   */
  username?: string;
  /** Serve TLS only, on `port`. */
  tls?: RedisTlsOptions;
  /** Extra `redis-server` arguments, e.g. `['--maxmemory', '10mb']`. */
  args?: string[];
  /** Fixed port; a free one by default. */
  port?: number;
}

/** A real redis-server process the test controls. */
export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** `host:port`, the form `DC_CACHE_ADDRESSES` takes. */
  readonly address: string;
  readonly pid: number | undefined;
  /** True while the process runs (also while stopped). */
  readonly running: boolean;
  /** SIGKILL and wait for the process to exit. */
  kill(): Promise<void>;
  /** SIGSTOP: the process hangs with its sockets open. */
  stop(): void;
  /** SIGCONT after `stop()`. */
  cont(): void;
  /** Start again on the same port (after `kill()`, or kills first); the data is gone. */
  restart(): Promise<void>;
  /** FLUSHALL. */
  flush(): Promise<void>;
  /** Send one command and return the raw RESP reply (for assertions in tests). */
  command(...args: string[]): Promise<RespValue>;
  /** SIGKILL and remove the temp dir. */
  close(): Promise<void>;
}

/** A decoded RESP reply. */
export type RespValue = string | number | null | RespValue[] | Error;

let cachedBin: string | undefined;

/** Path of redis-server, or throws one line saying how to install it. */
export function redisServerBin(): string {
  if (cachedBin) return cachedBin;
  const candidates = [process.env.REDIS_SERVER_BIN, 'redis-server'].filter(Boolean) as string[];
  for (const c of candidates) {
    try {
      execFileSync(c, ['--version'], { stdio: 'ignore' });
      cachedBin = c;
      return c;
    } catch {
      // try the next
    }
  }
  throw new Error(
    'redis-server not found: install it (Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install redis) or set REDIS_SERVER_BIN',
  );
}

/** Start one redis-server on a free port and wait until it answers PING. */
export async function startRedis(opts: RedisServerOptions = {}): Promise<RedisServer> {
  const bin = redisServerBin();
  const host = '127.0.0.1';
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'dcache-redis-'));
  const target: RespTarget = { host, port, ...(opts.tls ? { tls: fixtureTls(opts.tls) } : {}) };
  const auth = authArgs(opts);
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const spawnServer = async (): Promise<void> => {
    const args = [
      ...(opts.tls
        ? [
            '--port',
            '0',
            '--tls-port',
            String(port),
            '--tls-cert-file',
            opts.tls.cert,
            '--tls-key-file',
            opts.tls.key,
            '--tls-ca-cert-file',
            opts.tls.ca,
            '--tls-auth-clients',
            opts.tls.authClients ?? 'optional',
          ]
        : ['--port', String(port)]),
      '--bind',
      host,
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--daemonize',
      'no',
      '--loglevel',
      'warning',
      ...(opts.username
        ? [
            '--user',
            opts.username,
            'on',
            `>${opts.password ?? ''}`,
            '~*',
            '&*',
            '+@all',
            '--user',
            'default',
            'off',
          ]
        : opts.password
          ? ['--requirepass', opts.password]
          : []),
      ...(opts.args ?? []),
    ];
    const c = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    trackPid(c, dir);
    let stderr = '';
    c.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    exited = new Promise((resolve) => c.once('exit', () => resolve()));
    let dead = false;
    c.once('exit', () => {
      dead = true;
    });
    await waitFor(
      async () => {
        if (dead) throw new Error(`redis-server on port ${port} exited at start: ${stderr.trim()}`);
        return (await ping(target, auth)) === true;
      },
      { timeout: 15_000, interval: 25, message: `redis-server on port ${port} to answer PING` },
    );
  };

  const isRunning = (): boolean =>
    child !== undefined && child.exitCode === null && child.signalCode === null;

  const kill = async (): Promise<void> => {
    if (child && isRunning()) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await exited;
    }
  };

  await spawnServer();

  const server: RedisServer = {
    host,
    port,
    address: `${host}:${port}`,
    get pid() {
      return child?.pid;
    },
    get running() {
      return isRunning();
    },
    kill,
    stop() {
      child?.kill('SIGSTOP');
    },
    cont() {
      child?.kill('SIGCONT');
    },
    async restart() {
      await kill();
      await spawnServer();
    },
    async flush() {
      await resp(target, auth, ['FLUSHALL']);
    },
    command(...args: string[]) {
      return resp(target, auth, args);
    },
    async close() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  registerCleanup(() => server.close());
  return server;
}

/** N redis-servers started in parallel. */
export interface RedisCluster {
  readonly nodes: RedisServer[];
  /** `host:port` of each node, in order. */
  readonly addresses: string[];
  /** Comma list for `DC_CACHE_ADDRESSES`. */
  readonly addressList: string;
  /** Stop every node and remove its files. */
  stopAll(): Promise<void>;
}

/** Start `n` redis-servers on free ports. */
export async function startRedisCluster(
  n: number,
  opts: Omit<RedisServerOptions, 'port'> = {},
): Promise<RedisCluster> {
  const nodes = await Promise.all(Array.from({ length: n }, () => startRedis(opts)));
  const addresses = nodes.map((s) => s.address);
  return {
    nodes,
    addresses,
    addressList: addresses.join(','),
    async stopAll() {
      await Promise.all(nodes.map((s) => s.close()));
    },
  };
}

/** Where the fixture's own commands go: plain TCP, or TLS with the fixture's files. */
interface RespTarget {
  host: string;
  port: number;
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
}

function fixtureTls(t: RedisTlsOptions): NonNullable<RespTarget['tls']> {
  return {
    ca: readFileSync(t.ca),
    ...(t.clientCert ? { cert: readFileSync(t.clientCert) } : {}),
    ...(t.clientKey ? { key: readFileSync(t.clientKey) } : {}),
  };
}

/** The AUTH command of the fixture's own connections, if any. */
function authArgs(opts: RedisServerOptions): string[] | undefined {
  if (opts.username) return ['AUTH', opts.username, opts.password ?? ''];
  return opts.password ? ['AUTH', opts.password] : undefined;
}

async function ping(target: RespTarget, auth: string[] | undefined): Promise<boolean> {
  try {
    const r = await resp(target, auth, ['PING'], 500);
    return r === 'PONG';
  } catch {
    return false;
  }
}

/** One command over a fresh connection (AUTH first when a password is given). */
export function respCommand(
  host: string,
  port: number,
  password: string | undefined,
  args: string[],
  timeoutMs = 5_000,
): Promise<RespValue> {
  return resp({ host, port }, password ? ['AUTH', password] : undefined, args, timeoutMs);
}

function resp(
  target: RespTarget,
  auth: string[] | undefined,
  args: string[],
  timeoutMs = 5_000,
): Promise<RespValue> {
  const { host, port } = target;
  return new Promise((resolve, reject) => {
    // The fixture checks that the server answers, not its certificate (tests check those).
    const sock: Socket = target.tls
      ? tlsConnect({ host, port, ...target.tls, rejectUnauthorized: false })
      : connect({ host, port });
    const cmds = auth ? [auth, args] : [args];
    let buf = Buffer.alloc(0);
    const replies: RespValue[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`redis ${host}:${port} ${args[0]}: timeout after ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on(target.tls ? 'secureConnect' : 'connect', () => {
      sock.write(cmds.map(encode).join(''));
    });
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const parsed = decode(buf, 0);
        if (!parsed) break;
        replies.push(parsed.value);
        buf = buf.subarray(parsed.next);
      }
      if (replies.length === cmds.length) {
        clearTimeout(timer);
        sock.end();
        resolve(replies[replies.length - 1] as RespValue);
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

function encode(args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

function decode(buf: Buffer, at: number): { value: RespValue; next: number } | undefined {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[at] ?? 0);
  const line = buf.toString('utf8', at + 1, eol);
  switch (type) {
    case '+':
      return { value: line, next: eol + 2 };
    case '-':
      return { value: new Error(line), next: eol + 2 };
    case ':':
      return { value: Number(line), next: eol + 2 };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, next: eol + 2 };
      if (buf.length < eol + 2 + len + 2) return undefined;
      return { value: buf.toString('utf8', eol + 2, eol + 2 + len), next: eol + 2 + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next: eol + 2 };
      const out: RespValue[] = [];
      let pos = eol + 2;
      for (let i = 0; i < n; i++) {
        const item = decode(buf, pos);
        if (!item) return undefined;
        out.push(item.value);
        pos = item.next;
      }
      return { value: out, next: pos };
    }
    default:
      throw new Error(`bad RESP type ${type}`);
  }
}
