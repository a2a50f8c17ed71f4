import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Local redis-servers for `npm start` / `dcache dev`. */
export interface LocalRedis {
  addresses: string[];
  stop(): void;
}

/** One line saying how to get redis-server, for when it is missing. */
export const REDIS_MISSING =
  'redis-server not found: install it (Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install redis), or point dcache at existing nodes with DC_CACHE_ADDRESSES=host:port,host:port';

/** Start `n` redis-servers on free loopback ports (temp dirs, no persistence); they die with this process. */
export async function startLocalRedis(
  n: number,
  bin = process.env.REDIS_SERVER_BIN ?? 'redis-server',
): Promise<LocalRedis> {
  try {
    execFileSync(bin, ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(REDIS_MISSING);
  }
  const children: ChildProcess[] = [];
  const dirs: string[] = [];
  const addresses: string[] = [];
  const stop = () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
  process.once('exit', stop);
  for (let i = 0; i < n; i++) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'dcache-dev-'));
    dirs.push(dir);
    const c = spawn(
      bin,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ],
      {
        stdio: 'ignore',
      },
    );
    children.push(c);
    addresses.push(`127.0.0.1:${port}`);
  }
  await Promise.all(addresses.map((a) => waitListening(Number(a.split(':')[1]), 10_000)));
  return { addresses, stop };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

async function waitListening(port: number, timeout: number): Promise<void> {
  const until = Date.now() + timeout;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((r) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => {
        s.end();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`redis-server on port ${port} did not start within ${timeout} ms`);
}
