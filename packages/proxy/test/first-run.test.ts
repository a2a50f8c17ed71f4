/**
 * A newcomer's first run of the server entry: --help and --version, one warning for a misspelt
 * DC_* variable, JSON logs into a pipe and pretty logs on a terminal (logger.format auto).
 */
import { execFileSync } from 'node:child_process';
import { cleanupAll, freePort, startProcess, type TestProcess, waitFor } from '@dcache/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { envName, flagName, loadConfig, SETTINGS, unknownEnv, usage } from '../src/config.js';
import { MAIN_JS, START_JS } from './helpers.js';

afterAll(cleanupAll);

async function runToEnd(args: string[], env: Record<string, string> = {}) {
  const p = await startProcess(process.execPath, args, { env: { DC_CONFIG: '', ...env } });
  const timer = setTimeout(() => p.signal('SIGKILL'), 15_000);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

const hasScript = (() => {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('--help and --version', () => {
  it('usage() lists every setting with its flag, environment name and default', () => {
    const text = usage();
    for (const s of SETTINGS) {
      const line = text.split('\n').find((l) => l.startsWith(`  --${flagName(s.path)}  `));
      expect(line, s.path).toBeDefined();
      expect(line).toContain(envName(s.path));
      expect(line).toContain('default ');
    }
    expect(text).toContain('DC_CLUSTER_PEERS_DNS');
    expect(text).toMatch(/--server-shutdown-delay {2}DC_SERVER_SHUTDOWN_DELAY {2}default 0s/);
  });

  it('node dist/main.js --help prints it and exits 0 without starting; npm start -- --help too', async () => {
    const main = await runToEnd([MAIN_JS, '--help']);
    expect(main.code).toBe(0);
    expect(main.stdout).toContain('Usage: node packages/proxy/dist/main.js');
    expect(main.stdout).toContain('DC_CACHE_ADDRESSES_AUTHORITATIVE');
    expect(main.stdout).not.toContain('listening');
    // The bad value is never read: --help wins over a bad setting.
    const withBad = await runToEnd([MAIN_JS, '-h'], { DC_SERVER_PORT: 'abc' });
    expect(withBad.code).toBe(0);
    // npm start: no local redis-servers are started for --help.
    const start = await runToEnd([START_JS, '--help']);
    expect(start.code).toBe(0);
    expect(start.stdout).toContain('Usage: npm start --');
    expect(start.stdout).not.toContain('local redis-servers');
    const version = await runToEnd([MAIN_JS, '--version']);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^dcache \d+\.\d+\.\d+\n$/);
  });
});

describe('unknown DC_* environment variables', () => {
  it('names each one, with the closest setting when it looks like a typo', () => {
    expect(
      unknownEnv({
        DC_CACHE_ADRESSES: 'x',
        DC_SERVER_PORTT: '1',
        DC_SHUTDOWN_DELAY: '5s',
        DC_WARMUP_WINDOW: '1m',
        DC_CONFIG: '',
        DC_SERVER_PORT: '1',
        DC_SOMETHING_ELSE_ENTIRELY: '1',
        HOME: '/root',
      }),
    ).toEqual([
      { name: 'DC_CACHE_ADRESSES', suggestion: 'DC_CACHE_ADDRESSES' },
      { name: 'DC_SERVER_PORTT', suggestion: 'DC_SERVER_PORT' },
      { name: 'DC_SOMETHING_ELSE_ENTIRELY' },
    ]);
  });

  it('the process logs one warning at start and goes on (JSON: its stdout is no terminal)', async () => {
    const port = await freePort();
    let p: TestProcess | undefined;
    try {
      p = await startProcess(process.execPath, [MAIN_JS], {
        env: {
          DC_CONFIG: '',
          DC_SERVER_PORT: String(port),
          DC_CACHE_ADDRESSES: '127.0.0.1:1',
          DC_CACHE_ADRESSES: '127.0.0.1:2',
          DC_LOGGER_LEVEL: 'info',
        },
        readyUrl: `http://127.0.0.1:${port}/health/live`,
      });
      const lines = p
        .stdout()
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as { level: number; msg: string; unknown?: string[] });
      const warned = lines.filter((l) => l.unknown !== undefined);
      expect(warned).toHaveLength(1);
      expect(warned[0]?.level).toBe(40);
      expect(warned[0]?.unknown).toEqual(['DC_CACHE_ADRESSES']);
      expect(warned[0]?.msg).toContain('did you mean DC_CACHE_ADDRESSES?');
    } finally {
      await p?.stop();
    }
  });
});

describe('logger.format', () => {
  it('auto is the default; json and pretty force either', () => {
    expect(loadConfig({ env: {} }).logger.format).toBe('auto');
    expect(loadConfig({ env: { DC_LOGGER_FORMAT: 'json' } }).logger.format).toBe('json');
    expect(() => loadConfig({ env: { DC_LOGGER_FORMAT: 'fancy' } })).toThrow(/DC_LOGGER_FORMAT/);
  });

  it.skipIf(!hasScript)(
    'auto on a terminal (script(1) gives the process a pty): pretty lines, no JSON; json forces JSON there',
    async () => {
      const run = async (format: string | undefined) => {
        const port = await freePort();
        const env: Record<string, string> = {
          DC_CONFIG: '',
          DC_SERVER_PORT: String(port),
          DC_CACHE_ADDRESSES: '127.0.0.1:1',
          DC_LOGGER_LEVEL: 'info',
          ...(format ? { DC_LOGGER_FORMAT: format } : {}),
        };
        const cmd = `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(MAIN_JS)}`;
        const p = await startProcess('script', ['-qfec', cmd, '/dev/null'], { env });
        try {
          await waitFor(() => p.output().includes('dcache listening'), {
            timeout: 30_000,
            message: 'the proxy to log that it listens',
          });
        } finally {
          await p.stop();
        }
        return p.output();
      };
      const pretty = await run(undefined);
      expect(pretty).toMatch(/INFO.*dcache listening/);
      expect(pretty).not.toMatch(/^\{"level":/m);
      const json = await run('json');
      expect(json).toMatch(/^\{"level":30,.*"msg":"dcache listening"/m);
    },
  );
});
