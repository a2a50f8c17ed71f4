// Issue 17, item 6: the shipped alert rules (docker/prometheus-rules.yml, also the
// PrometheusRule on Kubernetes) stay quiet where nothing is wrong — compose's monitoring
// profile without the cluster profile (one proxy whose configured peer never exists), a
// rolling update, several clusters in one Prometheus — and fire where something is. Unit
// tests of the rules with `promtool test rules`: synthetic series, Prometheus' own evaluator.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './manifests.js';

const PROMTOOL = [process.env.PROMTOOL_BIN, '/usr/bin/promtool', '/usr/local/bin/promtool'].find(
  (p): p is string => !!p && existsSync(p),
);
const RULES = join(REPO_ROOT, 'docker/prometheus-rules.yml');
const ALERTS = [
  'DcacheProxyDown',
  'DcacheRedisNodeEjected',
  'DcacheHigh5xxRatio',
  'DcachePeerSyncStale',
  'DcacheRingVersionSkew',
];
const PEER = 'http://cache-server-2:8080';
const proxyLabels = (instance: string, job = 'dcache') => `job="${job}", instance="${instance}"`;

interface Series {
  series: string;
  values: string;
}
interface ExpAlert {
  exp_labels: Record<string, string>;
  exp_annotations: Record<string, string>;
}

/** A healthy proxy for `minutes` minutes: up, ring version `version`, nodes up, 2xx traffic. */
function healthyProxy(instance: string, minutes: number, version = 1, job = 'dcache'): Series[] {
  const l = proxyLabels(instance, job);
  return [
    { series: `up{${l}}`, values: `1x${minutes}` },
    { series: `dcache_ring_version{${l}}`, values: `${version}x${minutes}` },
    { series: `dcache_node_up{${l}, node="redis-1:6379"}`, values: `1x${minutes}` },
    {
      series: `dcache_http_requests_total{${l}, route="/api/v1/cache/:key", status_class="2xx"}`,
      values: `0+600x${minutes}`,
    },
  ];
}

/** The series of one peer of `instance`: counters of ok and error syncs, last-success time. */
function peer(instance: string, ok: string, error: string, lastSuccess: string): Series[] {
  const l = `${proxyLabels(instance)}, peer="${PEER}"`;
  return [
    { series: `dcache_peer_sync_total{${l}, kind="pull", result="ok"}`, values: ok },
    { series: `dcache_peer_sync_total{${l}, kind="pull", result="error"}`, values: error },
    { series: `dcache_peer_sync_last_success_timestamp_seconds{${l}}`, values: lastSuccess },
  ];
}

/** One promtool test: `series` for the scenario; at `at`, exactly `firing` (others: none). */
function scenario(
  name: string,
  series: Series[],
  at: string,
  firing: Record<string, ExpAlert[]> = {},
) {
  return {
    name,
    interval: '1m',
    input_series: series,
    alert_rule_test: ALERTS.map((alertname) => ({
      eval_time: at,
      alertname,
      exp_alerts: firing[alertname] ?? [],
    })),
  };
}

const dir = mkdtempSync(join(tmpdir(), 'dcache-alert-rules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `promtool test rules` on the given tests against the shipped rules. */
function promtoolTest(tests: ReturnType<typeof scenario>[]) {
  const file = join(dir, `t-${Math.random().toString(36).slice(2)}.yml`);
  // JSON is YAML.
  writeFileSync(file, JSON.stringify({ rule_files: [RULES], evaluation_interval: '1m', tests }));
  const r = spawnSync(PROMTOOL!, ['test', 'rules', file], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe.skipIf(!PROMTOOL)(
  `alert rules under promtool test rules${PROMTOOL ? '' : ' (SKIPPED: promtool not installed; .ci/run installs prometheus)'}`,
  () => {
    it('compose --profile monitoring without cluster: a seed peer that never answers fires nothing in 30 minutes', () => {
      const r = promtoolTest([
        scenario(
          'one proxy, its configured peer never exists',
          [
            ...healthyProxy('cache-server', 40),
            // Known since t=0 (the gauge starts at "when the peer became known"), never synced.
            ...peer('cache-server', '0x40', '0+4x40', '0x40'),
          ],
          '30m',
        ),
      ]);
      expect(r.status, r.out).toBe(0);
    });

    it('a rolling update (a peer pod goes away and is forgotten after 5 minutes) fires nothing', () => {
      // Synced every minute until minute 6, then silent; forgotten (series gone) at minute 11.
      const r = promtoolTest([
        scenario(
          'peer replaced by a rollout',
          [
            ...healthyProxy('dcache-7d9-a', 30),
            ...peer('dcache-7d9-a', '0+1x6 6x4 stale', '0x6 1+1x4 stale', '0+60x6 360x4 stale'),
          ],
          '20m',
        ),
        scenario(
          '... nor while it is gone',
          [
            ...healthyProxy('dcache-7d9-a', 30),
            ...peer('dcache-7d9-a', '0+1x6 6x4 stale', '0x6 1+1x4 stale', '0+60x6 360x4 stale'),
          ],
          '11m',
        ),
      ]);
      expect(r.status, r.out).toBe(0);
    });

    it('two clusters with different ring versions in one Prometheus fire nothing; two proxies of one cluster that disagree do', () => {
      const r = promtoolTest([
        scenario(
          'two jobs, one proxy each',
          [...healthyProxy('a', 20, 3, 'dcache'), ...healthyProxy('b', 20, 7, 'dcache-staging')],
          '15m',
        ),
        scenario(
          'one job, versions 3 and 4',
          [...healthyProxy('a', 20, 3), ...healthyProxy('b', 20, 4)],
          '15m',
          {
            DcacheRingVersionSkew: [
              {
                exp_labels: { severity: 'warning', job: 'dcache' },
                exp_annotations: {
                  summary:
                    'dcache proxies of dcache disagree on the ring version for more than 2 minutes',
                },
              },
            ],
          },
        ),
      ]);
      expect(r.status, r.out).toBe(0);
    });

    it('a peer that synced and then stopped answering fires DcachePeerSyncStale; a proxy that stops answering fires DcacheProxyDown', () => {
      const down = healthyProxy('cache-server-2', 20).map((s) =>
        s.series.startsWith('up{') ? { ...s, values: '1x5 0x15' } : s,
      );
      const r = promtoolTest([
        scenario(
          'peer synced until minute 5, then silent (a seed: never forgotten)',
          [
            ...healthyProxy('cache-server', 20),
            ...down,
            ...peer('cache-server', '0+1x5 5x15', '0x5 1+1x15', '0+60x5 300x15'),
          ],
          '15m',
          {
            DcachePeerSyncStale: [
              {
                exp_labels: {
                  severity: 'warning',
                  job: 'dcache',
                  instance: 'cache-server',
                  peer: PEER,
                },
                exp_annotations: {
                  summary: `cache-server has not synced membership with ${PEER} for 3 minutes`,
                },
              },
            ],
            DcacheProxyDown: [
              {
                exp_labels: { severity: 'critical', job: 'dcache', instance: 'cache-server-2' },
                exp_annotations: {
                  summary: 'dcache proxy cache-server-2 is not answering /metrics',
                },
              },
            ],
          },
        ),
      ]);
      expect(r.status, r.out).toBe(0);
    });

    it('a wrong expectation fails (the harness is not vacuous)', () => {
      const r = promtoolTest([
        scenario('expects an alert that cannot fire', healthyProxy('cache-server', 10), '5m', {
          DcacheProxyDown: [
            {
              exp_labels: { severity: 'critical', job: 'dcache', instance: 'cache-server' },
              exp_annotations: { summary: 'dcache proxy cache-server is not answering /metrics' },
            },
          ],
        }),
      ]);
      expect(r.status).not.toBe(0);
      expect(r.out).toContain('DcacheProxyDown');
    });
  },
);
