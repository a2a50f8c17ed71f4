import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  CI_SAFE_ENV,
  PROXY_MAIN,
  type RedisCluster,
  spawnProxy,
  startRedisCluster,
  type TestProcess,
} from '@dcache/test-utils';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The built `dcache` binary. */
export const BIN = fileURLToPath(new URL('../../packages/cli/dist/bin.js', import.meta.url));
export { PROXY_MAIN };
/** The admin token fixtures use. */
export const TOKEN = 'cli-admin-token';

/** Whether `script` (util-linux) can give a child a pseudo-terminal. */
export const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

/** The outcome of one run of the binary. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Options of `dcache()`. */
export interface RunOptions {
  env?: Record<string, string | undefined>;
  /** Text piped to stdin (otherwise stdin is /dev/null: not a terminal). */
  input?: string;
  timeout?: number;
  cwd?: string;
}

/** The environment of a child without the caller's DCACHE_* and colour settings. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['DCACHE_URL', 'DCACHE_TOKEN', 'FORCE_COLOR', 'NO_COLOR', 'CI']) delete env[k];
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Run `node packages/cli/dist/bin.js ...args` and collect its exit code and output. */
export function dcache(args: readonly string[], opts: RunOptions = {}): Promise<Run> {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npx turbo run build\` first`);
  return runProcess('node', [BIN, ...args], opts);
}

/** Run any command with the same collection as `dcache()`. */
export function runProcess(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], {
      cwd: opts.cwd ?? ROOT,
      env: cleanEnv(opts.env),
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const limit = opts.timeout ?? 90_000; // generous: CI runs on 2 busy cores
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`${cmd} ${args.join(' ')} ran longer than ${limit} ms:\n${stdout}\n${stderr}`),
      );
    }, limit);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** A real proxy process over real redis-servers. */
export interface ProxyFixture {
  url: string;
  cluster: RedisCluster;
  proc: TestProcess;
  /** `dcache --url <this proxy> --token <admin token> ...args`. */
  cli(args: readonly string[], opts?: RunOptions): Promise<Run>;
  stop(): Promise<void>;
}

/** Start `n` redis-servers and `node packages/proxy/dist/main.js` over them. */
export async function startProxy(n = 3, env: Record<string, string> = {}): Promise<ProxyFixture> {
  if (!existsSync(PROXY_MAIN))
    throw new Error(`${PROXY_MAIN} is missing: run \`npx turbo run build\` first`);
  const cluster = await startRedisCluster(n);
  const { url, proc } = await spawnProxy(
    { DC_CACHE_ADDRESSES: cluster.addressList, DC_ADMIN_TOKEN: TOKEN, ...CI_SAFE_ENV, ...env },
    { readyPath: '/health' },
  );
  return {
    url,
    cluster,
    proc,
    cli: (args, opts) => dcache(['--url', url, '--token', TOKEN, ...args], opts),
    async stop() {
      await proc.stop(5_000);
      await cluster.stopAll();
    },
  };
}

/** Parse a run's stdout as JSON (with the output in the error when it is not). */
export function json<T = unknown>(r: Run): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escapes are control characters.
const ANSI = /\u001b\[[0-9;?]*[A-Za-z]/g;

/** Text without ANSI escapes. */
export function plain(text: string): string {
  return text.replace(ANSI, '');
}

/** Whether `text` contains ANSI escapes. */
export function hasAnsi(text: string): boolean {
  return text.includes('\u001b[');
}
