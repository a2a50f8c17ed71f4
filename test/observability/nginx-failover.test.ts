import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cleanupAll,
  freePort,
  type RedisCluster,
  registerCleanup,
  startProcess,
  startRedisCluster,
  type TestProcess,
  waitFor,
} from '@dcache/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  apiRequests,
  findBinary,
  mixedLoad,
  type Outcome,
  type ProxyProcess,
  proxyPair,
  REPO_ROOT,
  scrape,
  seedHotKeys,
  summarize,
  tempDir,
} from './stack.js';

const NGINX = findBinary('NGINX_BIN', [
  '/usr/sbin/nginx',
  '/usr/bin/nginx',
  '/usr/local/sbin/nginx',
]);
/** Requests each proxy must have served (per process) in the phases before and after the restart. */
const PHASE_REQUESTS = 150;

describe.skipIf(!NGINX)(
  `nginx (docker/nginx.conf rendered for loopback) in front of two peered proxies${NGINX ? '' : ' (SKIPPED: nginx not installed; .ci/run installs it)'}`,
  () => {
    let redis: RedisCluster;
    let proxies: [ProxyProcess, ProxyProcess];
    let nginx: TestProcess;
    let lb: string;
    let prefixDir: string;

    beforeAll(async () => {
      redis = await startRedisCluster(3);
      proxies = await proxyPair(redis.addressList);
      await Promise.all(proxies.map((p) => p.start()));

      prefixDir = tempDir('dcache-nginx-');
      const port = await freePort();
      lb = `http://127.0.0.1:${port}`;
      const conf = execFileSync(
        'node',
        [
          join(REPO_ROOT, 'docker/render-nginx.mjs'),
          '--listen',
          String(port),
          ...proxies.flatMap((p) => ['--upstream', `127.0.0.1:${p.port}`]),
          '--prefix',
          prefixDir,
        ],
        { encoding: 'utf8' },
      ).trim();
      nginx = await startProcess(NGINX!, ['-p', prefixDir, '-c', conf, '-g', 'daemon off;'], {
        readyUrl: `${lb}/nginx-health`,
      });
      // SIGTERM makes the master stop its workers; a SIGKILL (cleanupAll's last resort) would not.
      registerCleanup(async () => {
        await nginx.stop(5_000);
      });
    });

    afterAll(async () => {
      await nginx?.stop(5_000);
      await Promise.all((proxies ?? []).map((p) => p.stop()));
      await cleanupAll();
    });

    it('serves every request while one proxy is SIGTERMed and restarted on the same port', async () => {
      const [a, b] = proxies;
      const prefix = `lb-${Date.now()}`;
      await seedHotKeys(lb, prefix);
      const outcomes: Outcome[] = [];
      let done = false;
      const load = mixedLoad(
        {
          targets: [lb],
          concurrency: 8,
          ratePerSec: 300,
          maxMs: 60_000,
          maxRequests: 18_000,
          until: () => done,
          keyPrefix: prefix,
        },
        outcomes,
      );
      const served = async (p: ProxyProcess) => apiRequests(await scrape(p.url));
      try {
        // Phase 1: both proxies serve through nginx.
        await waitFor(
          async () => (await served(a)) >= PHASE_REQUESTS && (await served(b)) >= PHASE_REQUESTS,
          { timeout: 20_000, interval: 100, message: 'both proxies to serve traffic' },
        );
        const bBefore = await served(b);
        const termAt = Date.now();
        const exit = await b.stop(15_000);
        const exitedAt = Date.now();
        // Phase 2: b is down; nginx must route everything to a.
        await waitFor(() => outcomes.filter((o) => o.at > exitedAt).length >= 300, {
          timeout: 20_000,
          message: 'load while one proxy is down',
        });
        const aDuringDown = await served(a);
        await b.start();
        const restartedAt = Date.now();
        // Phase 3: nginx puts b back (after fail_timeout) and both serve again.
        await waitFor(async () => (await served(b)) >= PHASE_REQUESTS, {
          timeout: 40_000,
          interval: 200,
          message: 'the restarted proxy to serve traffic through nginx again',
        });
        const bAfter = await served(b);
        const aTotal = await served(a);
        done = true;
        await load;

        // nginx's own record: status per request and which upstream(s) served it.
        const access = readFileSync(join(prefixDir, 'access.log'), 'utf8')
          .split('\n')
          .filter((l) => l.includes('/api/v1/'));
        const lbStatus = (l: string) => Number(l.match(/" (\d{3}) /)?.[1]);
        const retried = access.filter((l) => /ua="[^"]*,/.test(l)).length;
        const gatewayErrors = access.filter((l) => [502, 503, 504].includes(lbStatus(l))).length;
        const errorLog = readFileSync(join(prefixDir, 'error.log'), 'utf8');
        const errorLines = errorLog.split('\n').filter((l) => /\[error\]/.test(l));
        // Refused: the proxy was down. Reset: a kept-alive connection closed by the draining
        // proxy as nginx sent on it (HTTP/1.1's idle-close race); nginx retries both for
        // idempotent requests and the batch routes, which is what the config is for.
        const refused = errorLines.filter((l) => /Connection refused/.test(l)).length;
        const resets = errorLines.filter((l) => /reset by peer|prematurely closed/.test(l)).length;
        const failures = outcomes.filter((o) => !o.ok);
        const when = (o: Outcome) =>
          o.at < termAt ? 'before' : o.at < restartedAt ? 'down' : 'after';
        const phases = { before: 0, down: 0, after: 0 };
        for (const o of outcomes) phases[when(o)]++;
        console.log(
          `[nginx] requests=${outcomes.length} (${summarize(outcomes)}) failed=${failures.length} ` +
            `phases before/down/after=${phases.before}/${phases.down}/${phases.after}; ` +
            `proxy A served ${aTotal} API requests (${aDuringDown} by the end of the downtime); ` +
            `proxy B served ${bBefore} before SIGTERM (exit ${exit}, drained in ${exitedAt - termAt} ms) and ${bAfter} after its restart; ` +
            `nginx: ${access.length} API log lines, ${retried} retried on the other upstream, ${gatewayErrors} 502/503/504; error log: ${errorLines.length} upstream errors (${refused} connection refused, ${resets} reset/closed by the draining proxy)`,
        );
        if (failures.length > 0) {
          console.log(JSON.stringify(failures.slice(0, 10).map((f) => ({ ...f, phase: when(f) }))));
        }
        expect(failures).toEqual([]);
        expect(gatewayErrors).toBe(0);
        expect(exit).toBe(0);
        expect(phases.before).toBeGreaterThan(0);
        expect(phases.down).toBeGreaterThanOrEqual(300);
        expect(phases.after).toBeGreaterThan(0);
        expect(bBefore).toBeGreaterThanOrEqual(PHASE_REQUESTS);
        expect(bAfter).toBeGreaterThanOrEqual(PHASE_REQUESTS);
        expect(aTotal).toBeGreaterThan(aDuringDown);
        // nginx logged every request the load sent (the seed batch included).
        expect(access.length).toBe(
          outcomes.length + outcomes.filter((o) => o.op === 'delete').length + 1,
        );
      } finally {
        done = true;
        await load;
      }
    });
  },
);
