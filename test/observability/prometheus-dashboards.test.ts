import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
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
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DASHBOARD_DIR, dashboardExprs, substituteVariables } from './dashboards.js';
import {
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

const PROMETHEUS = findBinary('PROMETHEUS_BIN', [
  '/usr/bin/prometheus',
  '/usr/local/bin/prometheus',
]);
/** Seconds of 1 s scrapes Prometheus must hold for every proxy before expressions run. */
const MIN_SAMPLES = 15;
/** Job name of docker/prometheus.yml; alert rules and dashboards select on it. */
const JOB = 'dcache';
/** Instance labels compose gives the proxies (docker/prometheus.yml relabels to these). */
const INSTANCES = ['cache-server', 'cache-server-2'] as const;

interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}
interface PromAnswer {
  status: 'success' | 'error';
  errorType?: string;
  error?: string;
  data?: { resultType: string; result: PromResult[] | [number, string] };
}

/** Evaluates `query` at the current time through Prometheus's HTTP API. */
async function query(base: string, q: string): Promise<PromAnswer> {
  const r = await fetch(`${base}/api/v1/query`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ query: q }).toString(),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await r.text();
  try {
    return JSON.parse(text) as PromAnswer;
  } catch {
    return { status: 'error', errorType: `http ${r.status}`, error: text.slice(0, 200) };
  }
}

/** Series of an instant-vector answer (a scalar counts as one). */
function series(a: PromAnswer): PromResult[] {
  const res = a.data?.result;
  if (!res) return [];
  if (a.data?.resultType === 'scalar') return [{ metric: {}, value: res as [number, string] }];
  return res as PromResult[];
}

describe('substituteVariables', () => {
  it('replaces interval built-ins and template variables with values Prometheus accepts', () => {
    const $ = '$'; // Grafana's ${name} syntax, spelled without tripping template-string lint.
    const vars = [
      { name: 'instance', type: 'query' },
      { name: 'ds', type: 'datasource' },
    ];
    expect(
      substituteVariables(
        `sum by (node) (rate(x_total{instance="$instance",node=~"${$}{instance}"}[$__rate_interval])) / $__interval_ms`,
        vars,
      ),
    ).toBe('sum by (node) (rate(x_total{instance=~".*",node=~".*"}[1m])) / 15000');
    expect(substituteVariables(`rate(x[${$}{__interval}])`, [])).toBe('rate(x[15s])');
  });
});

describe('dashboardExprs', () => {
  afterAll(() => cleanupAll());

  it('finds targets in top-level panels, collapsed rows and schema-1 rows, with variables substituted', () => {
    const dir = tempDir('dcache-dash-');
    const $ = '$';
    const target = (expr: string, refId = 'A') => ({ refId, expr });
    writeFileSync(
      join(dir, 'a.json'),
      JSON.stringify({
        templating: { list: [{ name: 'node', type: 'query' }] },
        panels: [
          {
            title: 'top',
            targets: [target('up'), target(`rate(x_total[${$}__rate_interval])`, 'B')],
          },
          {
            type: 'row',
            title: 'collapsed',
            collapsed: true,
            panels: [{ title: 'nested', targets: [target(`y{node="${$}node"}`)] }],
          },
        ],
        rows: [{ panels: [{ title: 'old', targets: [target('z')] }] }],
      }),
    );
    writeFileSync(join(dir, 'notes.txt'), 'not a dashboard');
    expect(dashboardExprs(dir).map((e) => `${e.panel}/${e.refId}: ${e.expr}`)).toEqual([
      'top/A: up',
      'top/B: rate(x_total[1m])',
      'nested/A: y{node=~".*"}',
      'old/A: z',
    ]);
  });

  it('extracts every "expr" written in the shipped dashboards', () => {
    const written = readdirSync(DASHBOARD_DIR)
      .filter((f) => f.endsWith('.json'))
      .map((f) => readFileSync(join(DASHBOARD_DIR, f), 'utf8').match(/"expr"\s*:/g)?.length ?? 0)
      .reduce((a, n) => a + n, 0);
    expect(written).toBeGreaterThan(0);
    expect(dashboardExprs()).toHaveLength(written);
  });
});

describe.skipIf(!PROMETHEUS)(
  `every Grafana panel expression on a real Prometheus scraping two real proxies${PROMETHEUS ? '' : ' (SKIPPED: prometheus not installed; .ci/run installs it)'}`,
  () => {
    let redis: RedisCluster;
    let proxies: [ProxyProcess, ProxyProcess];
    let prom: TestProcess;
    let promUrl: string;
    const outcomes: Outcome[] = [];
    let stopLoad = false;
    let load: Promise<void> = Promise.resolve();
    let peerSyncRuns = false;
    let respPorts: [number, number];
    let respLoad: Promise<void> = Promise.resolve();
    let convergeMs = -1;

    /** Waits until Prometheus holds `n` scrapes with up == 1 of every proxy in the last minute. */
    const waitForScrapes = async (n: number, timeout = 30_000) => {
      let last = '';
      await waitFor(
        async () => {
          const s = series(await query(promUrl, `sum_over_time(up{job="${JOB}"}[1m])`));
          last = JSON.stringify(s.map((x) => [x.metric.instance, x.value[1]]));
          return s.length === INSTANCES.length && s.every((x) => Number(x.value[1]) >= n);
        },
        { timeout, interval: 250, message: `${n} up==1 samples per proxy` },
      ).catch((e: Error) => {
        throw new Error(`${e.message}; last: ${last}\n${prom.output()}`);
      });
    };

    beforeAll(async () => {
      // Four nodes, the proxies start with three: the fourth is added through the admin API
      // once Prometheus scrapes, so the membership panels see a change travel between peers.
      redis = await startRedisCluster(4);
      // RESP on both, so the RESP row's panels have commands to show.
      respPorts = [await freePort(), await freePort()];
      proxies = await proxyPair(redis.addresses.slice(0, 3).join(','), {}, respPorts);
      await Promise.all(proxies.map((p) => p.start()));

      // The shipped scrape config relabels instance from the host name ("cache-server:8080"
      // → "cache-server"); on loopback both proxies share a host, so the same instance
      // names are given as static labels instead.
      const shipped = readFileSync(join(REPO_ROOT, 'docker/prometheus.yml'), 'utf8');
      expect(shipped).toContain(`job_name: ${JOB}`);
      const dir = tempDir('dcache-prom-');
      const port = await freePort();
      promUrl = `http://127.0.0.1:${port}`;
      const config = {
        global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
        rule_files: [join(REPO_ROOT, 'docker/prometheus-rules.yml')],
        scrape_configs: [
          {
            job_name: JOB,
            metrics_path: '/metrics',
            static_configs: proxies.map((p, i) => ({
              targets: [`127.0.0.1:${p.port}`],
              labels: { instance: INSTANCES[i]! },
            })),
          },
        ],
      };
      // JSON is YAML: Prometheus reads it as is.
      writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(config, null, 2));
      prom = await startProcess(PROMETHEUS!, [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--storage.tsdb.retention.time=1h',
        '--log.level=warn',
      ]);
      registerCleanup(async () => {
        await prom.stop(5_000);
      });
      // Not startProcess's readyUrl: it takes a 503 as "up", and /-/ready answers 503 until
      // the TSDB is open.
      await waitFor(
        async () => {
          if (!prom.running) throw new Error(`prometheus exited:\n${prom.output()}`);
          const r = await fetch(`${promUrl}/-/ready`).catch(() => undefined);
          await r?.arrayBuffer();
          return r?.status === 200;
        },
        { timeout: 30_000, interval: 100, message: 'prometheus /-/ready' },
      );

      await waitForScrapes(2);
      peerSyncRuns = (await scrape(proxies[0].url)).includes('dcache_peer_sync_total{');
      if (peerSyncRuns) {
        const added = await fetch(`${proxies[0].url}/api/v1/ring/nodes`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ address: redis.addresses[3] }),
        });
        expect(added.status, await added.text()).toBe(201);
        const version = async (p: ProxyProcess) =>
          ((await (await fetch(`${p.url}/api/v1/ring`)).json()) as { version: number }).version;
        const want = await version(proxies[0]);
        convergeMs = await waitFor(async () => (await version(proxies[1])) === want, {
          timeout: 15_000,
          interval: 50,
          message: `proxy 2 to learn ring version ${want} from its peer`,
        });
      }

      const prefix = `prom-${Date.now()}`;
      await seedHotKeys(proxies[0].url, prefix);
      // Light load on both proxies while Prometheus gathers samples; stopped after the queries.
      load = mixedLoad(
        {
          targets: proxies.map((p) => p.url),
          concurrency: 4,
          ratePerSec: 150,
          maxMs: 90_000,
          maxRequests: 15_000,
          until: () => stopLoad,
          keyPrefix: prefix,
        },
        outcomes,
      );
      // A light RESP load beside it: a few SET/GET/MGET per second on each proxy's RESP port.
      respLoad = Promise.all(
        respPorts.map(async (port, i) => {
          const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0 });
          c.on('error', () => {});
          for (let n = 0; !stopLoad && n < 5_000; n++) {
            const k = `${prefix}:resp:${i}:${n % 50}`;
            await c.set(k, String(n)).catch(() => {});
            await c.get(k).catch(() => {});
            if (n % 5 === 0) await c.mget(k, `${k}:x`).catch(() => {});
            await new Promise((r) => setTimeout(r, 20));
          }
          c.disconnect();
        }),
      ).then(() => {});
    });

    afterAll(async () => {
      stopLoad = true;
      await load;
      await respLoad;
      await prom?.stop(5_000);
      await Promise.all((proxies ?? []).map((p) => p.stop()));
      await cleanupAll();
    });

    it(`evaluates every expression after ${MIN_SAMPLES}+ s of 1 s scrapes: each parses and returns series`, async () => {
      // Every proxy up in every scrape of the last minute, and at least MIN_SAMPLES of them.
      await waitForScrapes(MIN_SAMPLES, 45_000);
      const samples = series(
        await query(promUrl, `count_over_time(dcache_http_requests_total{job="${JOB}"}[1m])`),
      );
      const perSeries = samples.map((s) => Number(s.value[1]));
      expect(perSeries.length).toBeGreaterThan(0);
      expect(Math.max(...perSeries)).toBeGreaterThanOrEqual(MIN_SAMPLES);

      // Whether the proxies run peer sync (it was being written when this test was).
      const peerSync = series(await query(promUrl, 'count(dcache_peer_sync_total)')).length > 0;
      expect(peerSync).toBe(peerSyncRuns);

      const exprs = dashboardExprs();
      expect(exprs.length).toBeGreaterThan(20);
      const rows: {
        where: string;
        expr: string;
        status: string;
        n: number;
        /** Series with a number (not NaN): a panel with only NaN draws nothing. */
        finite: number;
        values: string;
        error?: string;
      }[] = [];
      for (const e of exprs) {
        const a = await query(promUrl, e.expr);
        const s = series(a);
        const vals = s.map((x) => Number(x.value[1]));
        const nan = vals.filter((v) => Number.isNaN(v)).length;
        const finite = vals.filter((v) => Number.isFinite(v));
        const values =
          finite.length === 0
            ? nan
              ? 'NaN'
              : '-'
            : `${Math.min(...finite).toPrecision(3)}..${Math.max(...finite).toPrecision(3)}${nan ? ` (+${nan} NaN)` : ''}`;
        rows.push({
          where: `${e.dashboard.replace(/\.json$/, '')} / ${e.panel} / ${e.refId}`,
          expr: e.expr,
          status: a.status,
          n: s.length,
          finite: finite.length,
          values,
          ...(a.error ? { error: `${a.errorType}: ${a.error}` } : {}),
        });
      }
      const w = Math.max(...rows.map((r) => r.where.length));
      console.log(
        `[prometheus] ${exprs.length} expressions from ${new Set(exprs.map((e) => e.dashboard)).size} dashboard(s); ` +
          `${outcomes.length} requests so far (${summarize(outcomes)}); peer sync series: ${peerSync ? 'present' : 'ABSENT'}; ` +
          `ring change converged on the peer in ${convergeMs} ms\n` +
          `${'panel / ref'.padEnd(w)}  series  values            expr\n` +
          rows
            .map(
              (r) =>
                `${r.where.padEnd(w)}  ${String(r.n).padStart(6)}  ${r.values.padEnd(16)}  ${r.expr}${r.error ? `  ERROR ${r.error}` : ''}`,
            )
            .join('\n'),
      );

      // Every expression parses and evaluates.
      expect(rows.filter((r) => r.status !== 'success')).toEqual([]);
      // Every expression returns at least one series with a number. Without peer sync in the
      // proxy (no dcache_peer_sync_total series) the peer-sync and convergence panels cannot
      // have data: only then are they excused, and the test says so.
      const needsPeerSync = (x: string) =>
        /dcache_peer_sync_|dcache_membership_convergence_/.test(x);
      const noData = rows.filter((r) => r.finite === 0);
      const excused = peerSync ? [] : noData.filter((r) => needsPeerSync(r.expr));
      if (!peerSync) {
        console.warn(
          `[prometheus] NOTE: the proxies expose no dcache_peer_sync_total series (peer sync not running); ` +
            `${excused.length} peer-sync expression(s) returned no data and were NOT required to:\n  ${excused.map((r) => r.expr).join('\n  ')}`,
        );
      }
      expect(noData.filter((r) => !excused.includes(r))).toEqual([]);

      // A few figures the panels must show for this setup.
      const one = async (q: string) => Number(series(await query(promUrl, q))[0]?.value[1]);
      expect(await one('count(dcache_ring_version)')).toBe(2);
      expect(
        series(await query(promUrl, 'sum by (instance) (rate(dcache_http_requests_total[1m]))')),
      ).toHaveLength(2);
      expect(await one('sum(rate(dcache_http_requests_total[1m]))')).toBeGreaterThan(1);
      const hitRatio = await one(
        'sum(rate(dcache_cache_hits_total[1m])) / clamp_min(sum(rate(dcache_cache_hits_total[1m])) + sum(rate(dcache_cache_misses_total[1m])), 1e-9)',
      );
      expect(hitRatio).toBeGreaterThan(0.3);
      expect(hitRatio).toBeLessThan(1);

      // The shipped alert rules load and evaluate without error against the same series.
      const rules = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
        data: {
          groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[];
        };
      };
      const ruleList = rules.data.groups.flatMap((g) => g.rules);
      expect(ruleList.length).toBeGreaterThan(0);
      expect(ruleList.filter((r) => r.health !== 'ok')).toEqual([]);

      stopLoad = true;
      await load;
      const bad = outcomes.filter((o) => !o.ok);
      expect(bad, JSON.stringify(bad.slice(0, 5))).toEqual([]);
    });

    it('with the job and instance variables set, every panel shows that proxy only (and an unknown instance shows nothing)', async () => {
      // What Grafana sends when one job and one instance are chosen (a regex match of one value).
      const chosen = (expr: string, instance: string) =>
        expr
          .replace(/\$__rate_interval|\$\{__rate_interval\}/g, '1m')
          .replace(/"\$\{?job\}?"/g, `"${JOB}"`)
          .replace(/"\$\{?instance\}?"/g, `"${instance}"`);
      const exprs = dashboardExprs();
      // Every expression follows both variables (check-deploy.sh checks the same statically).
      for (const e of exprs) {
        expect(e.raw, e.panel).toContain('job=~"$job"');
        expect(e.raw, e.panel).toContain('instance=~"$instance"');
      }
      const [one, other] = INSTANCES;
      let withInstance = 0;
      for (const e of exprs) {
        const s = series(await query(promUrl, chosen(e.raw, one)));
        for (const x of s) {
          if (x.metric.instance === undefined) continue;
          withInstance++;
          expect(x.metric.instance, `${e.panel}: ${e.raw}`).toBe(one);
        }
      }
      expect(withInstance).toBeGreaterThan(5);
      const reporting = exprs.find((e) => e.raw.startsWith('count(dcache_ring_version'))!;
      expect(Number(series(await query(promUrl, chosen(reporting.raw, one)))[0]?.value[1])).toBe(1);
      expect(
        Number(series(await query(promUrl, chosen(reporting.raw, `${one}|${other}`)))[0]?.value[1]),
      ).toBe(2);
      expect(series(await query(promUrl, chosen(reporting.raw, 'no-such-proxy')))).toEqual([]);
    });
  },
);
