/**
 * DC_SERVER_SHUTDOWN_DELAY (alias DC_SHUTDOWN_DELAY) with a real `node dist/main.js`: after
 * SIGTERM, /health/ready answers 503 while requests (also on new connections) are still served;
 * then the drain as before and exit 0.
 */
import {
  cleanupAll,
  freePort,
  type RedisServer,
  startProcess,
  startRedis,
  waitFor,
} from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { MAIN_JS } from './helpers.js';

let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(cleanupAll);

async function get(
  url: string,
): Promise<{ status: number; body: string; connection: string | null }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: r.status, body: await r.text(), connection: r.headers.get('connection') };
}

describe('shutdown delay', () => {
  it('is a duration setting, 0 by default, under both names', () => {
    expect(loadConfig({ env: {} }).server.shutdownDelay).toBe(0);
    expect(loadConfig({ env: { DC_SERVER_SHUTDOWN_DELAY: '5s' } }).server.shutdownDelay).toBe(
      5_000,
    );
    expect(loadConfig({ env: { DC_SHUTDOWN_DELAY: '2s' } }).server.shutdownDelay).toBe(2_000);
    expect(() => loadConfig({ env: { DC_SHUTDOWN_DELAY: 'soon' } })).toThrow(/DC_SHUTDOWN_DELAY/);
  });

  it('SIGTERM: ready answers 503 while a GET still answers 200, then the process drains and exits 0', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    // Long enough to be seen from a busy test host; the drain bound after it is 5 s.
    const delayMs = 6_000;
    const p = await startProcess(process.execPath, [MAIN_JS], {
      env: {
        DC_CONFIG: '',
        DC_SERVER_HOST: '127.0.0.1',
        DC_SERVER_PORT: String(port),
        DC_CACHE_ADDRESSES: redis.address,
        DC_SHUTDOWN_DELAY: `${delayMs}ms`,
        DC_SERVER_SHUTDOWN_TIMEOUT: '5s',
        DC_LOGGER_LEVEL: 'info',
      },
      readyUrl: `${base}/health/ready`,
    });
    const put = await fetch(`${base}/api/v1/cache/sd-key`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: 'still here' }),
    });
    expect(put.status).toBe(200);
    expect((await get(`${base}/health/ready`)).status).toBe(200);

    p.signal('SIGTERM');
    await waitFor(
      async () => (await get(`${base}/health/ready`).catch(() => undefined))?.status === 503,
      {
        timeout: 5_000,
        interval: 20,
        message: '/health/ready to answer 503 after SIGTERM',
      },
    );
    expect(JSON.parse((await get(`${base}/health/ready`)).body)).toEqual({
      status: 'shutting_down',
    });
    // Still serving, on a new connection each (fetch without keep-alive reuse after close).
    const during = await get(`${base}/api/v1/cache/sd-key`);
    expect(during.status).toBe(200);
    expect(JSON.parse(during.body).value).toBe('still here');
    // Keep-alive answers ask the client to go elsewhere.
    expect(during.connection).toBe('close');
    expect(p.running).toBe(true);

    // Then the drain as before: the listener closes and the process exits 0 (delay + drain bound).
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      p.exited,
      new Promise<string>((r) => {
        timer = setTimeout(() => r('still running'), delayMs + 5_000 + 20_000);
      }),
    ]);
    clearTimeout(timer);
    expect(code).toBe(0);
    const out = p.output();
    expect(out).toContain('shutdown delay: /health/ready answers 503, still serving');
    expect(out.indexOf('shutdown delay')).toBeLessThan(out.indexOf('"msg":"stopped"'));
  });

  it('a second signal ends the delay at once', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const p = await startProcess(process.execPath, [MAIN_JS], {
      env: {
        DC_CONFIG: '',
        DC_SERVER_HOST: '127.0.0.1',
        DC_SERVER_PORT: String(port),
        DC_CACHE_ADDRESSES: redis.address,
        // Far longer than the test waits: only the second signal can end it.
        DC_SERVER_SHUTDOWN_DELAY: '10m',
        DC_LOGGER_LEVEL: 'info',
      },
      readyUrl: `${base}/health/ready`,
    });
    p.signal('SIGTERM');
    await waitFor(() => p.output().includes('shutdown delay'), {
      timeout: 10_000,
      message: 'the shutdown delay to begin',
    });
    p.signal('SIGINT');
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      p.exited,
      new Promise<string>((r) => {
        timer = setTimeout(() => r('still running'), 30_000);
      }),
    ]);
    clearTimeout(timer);
    expect(code).toBe(0);
  });
});
