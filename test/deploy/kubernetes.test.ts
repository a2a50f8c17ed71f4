// Issue 17, item 1: the Kubernetes manifests of deploy/kubernetes. What matters for a user:
// they match the API schemas, the probes hit real routes, every DC_* variable is a real
// setting, secrets come from the Secret, the node ids are the StatefulSet's DNS names, the
// pods run locked down, the shutdown fits the grace period, and the monitoring resources are
// the ones compose uses. The overlay is rendered with kubectl/kustomize where installed.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { envName, loadConfig, parseDuration, SETTINGS } from '@dcache/proxy';
import { cleanupAll, registerCleanup, startRedis } from '@dcache/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { startInProcessProxy } from '../helpers/in-process-proxy.js';
import {
  type EnvVar,
  expandEnv,
  K8S_DIR,
  type K8sObject,
  objectsIn,
  one,
  parseDocs,
  REPO_ROOT,
  selects,
  unexpandedRefs,
  yamlFiles,
} from './manifests.js';

const VALIDATOR = join(REPO_ROOT, 'scripts/validate-kubernetes.mjs');
const GENERATOR = join(REPO_ROOT, 'scripts/gen-kubernetes-monitoring.mjs');
const OVERLAY = 'overlays/example';
const SECRET_NAME = 'dcache-secrets';

const dir = mkdtempSync(join(tmpdir(), 'dcache-k8s-'));
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await cleanupAll();
});

const base = objectsIn('base');
const monitoring = objectsIn('components/monitoring');
const workloads = base.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');
const proxy = one(base, 'Deployment', 'dcache');
const redis = one(base, 'StatefulSet', 'redis');
const container = (w: K8sObject, name?: string) => {
  const cs = w.spec.template.spec.containers as { name: string; env?: EnvVar[] }[];
  return name ? cs.find((c) => c.name === name)! : cs[0]!;
};
// biome-ignore lint/suspicious/noExplicitAny: container specs are read by path.
const containersOf = (w: K8sObject): any[] => w.spec.template.spec.containers;
const proxyEnv = container(proxy, 'dcache').env ?? [];
const envValue = (name: string) => proxyEnv.find((e) => e.name === name)?.value;

/** Plain env values of the proxy with `$(VAR)` expanded as Kubernetes does, POD_* given. */
function expandedProxyEnv(pod: Record<string, string>): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const e of proxyEnv) {
    const fieldPath = e.valueFrom?.fieldRef?.fieldPath;
    if (fieldPath) vars[e.name] = pod[fieldPath] ?? `<${fieldPath}>`;
    else if (e.value !== undefined) vars[e.name] = expandEnv(e.value, vars);
  }
  return vars;
}

function run(cmd: string, args: readonly string[], cwd = REPO_ROOT) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd, timeout: 60_000 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, stdout: r.stdout ?? '' };
}

describe('schemas (scripts/validate-kubernetes.mjs, as check-deploy.sh runs it)', () => {
  it('every manifest of base, components and overlays matches the Kubernetes / Prometheus Operator schemas', () => {
    const files = yamlFiles(K8S_DIR);
    expect(files.length).toBeGreaterThanOrEqual(8);
    const r = run(process.execPath, [VALIDATOR, ...files]);
    expect(r.out).not.toContain('FAIL');
    expect(r.status, r.out).toBe(0);
    // Every API object of the tree was checked (kustomization files are skipped).
    const objects = objectsIn('.').length;
    expect(r.out).toContain(`${objects}/${objects} documents valid`);
  });

  it('a wrong type, a bad duration and an unknown kind fail, naming the field', () => {
    const bad = readFileSync(join(K8S_DIR, 'base/proxy.yaml'), 'utf8')
      .replace('containerPort: 8080', 'containerPort: "http-8080"')
      .concat(
        '\n---\napiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\n',
        'spec: {selector: {}, endpoints: [{port: http, interval: soon}]}\n',
        '---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n',
      );
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, bad);
    const r = run(process.execPath, [VALIDATOR, file]);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/Deployment\/dcache: .*containerPort must be integer/);
    expect(r.out).toMatch(/ServiceMonitor\/x: .*interval must match pattern/);
    expect(r.out).toContain('no schema for example.com/v1 Widget');
  });
});

describe('probes', () => {
  const probes = workloads.flatMap((w) =>
    containersOf(w).flatMap((c) =>
      (['startupProbe', 'livenessProbe', 'readinessProbe'] as const)
        .filter((k) => c[k])
        .map((k) => ({ where: `${w.metadata.name}/${c.name}/${k}`, probe: c[k], container: c })),
    ),
  );

  it('every container has liveness and readiness probes; the proxy uses /health/live and /health/ready on its port', () => {
    for (const w of workloads) {
      for (const c of containersOf(w)) {
        expect(c.livenessProbe, `${c.name} liveness`).toBeDefined();
        expect(c.readinessProbe, `${c.name} readiness`).toBeDefined();
      }
    }
    const c = containersOf(proxy)[0];
    expect(c.livenessProbe.httpGet.path).toBe('/health/live');
    expect(c.readinessProbe.httpGet.path).toBe('/health/ready');
    for (const p of probes.filter((x) => x.probe.httpGet)) {
      const port = p.probe.httpGet.port;
      const named = p.container.ports.find(
        (x: { name: string; containerPort: number }) => x.name === port || x.containerPort === port,
      );
      expect(named, `${p.where}: port ${port}`).toBeDefined();
      // The port the proxy listens on (DC_SERVER_PORT) is the probed one.
      expect(String(named.containerPort)).toBe(envValue('DC_SERVER_PORT'));
    }
  });

  it('the probed paths answer 200 on a real proxy over a real Redis (and an unknown path does not)', async () => {
    const password = 'k8s-probe-test-password';
    const node = await startRedis({ password });
    registerCleanup(() => node.kill());
    const server = await startInProcessProxy({
      DC_CACHE_ADDRESSES: node.address,
      DC_CACHE_PASSWORD: password,
    });
    registerCleanup(() => server.close());
    const paths = [
      ...new Set(probes.filter((p) => p.probe.httpGet).map((p) => p.probe.httpGet.path)),
    ];
    expect(paths.sort()).toEqual(['/health/live', '/health/ready']);
    for (const path of paths) {
      const r = await fetch(`${server.url}${path}`, { signal: AbortSignal.timeout(10_000) });
      expect(r.status, `${path}: ${await r.text()}`).toBe(200);
    }
    const unknown = await fetch(`${server.url}/health/alive`);
    await unknown.arrayBuffer();
    expect(unknown.status).toBe(404);
  });
});

describe('environment', () => {
  // Each setting's variable, plus the aliases a setting may accept (envAliases).
  const known = new Set(
    SETTINGS.flatMap((s) => [
      envName(s.path),
      ...(((s as { envAliases?: readonly string[] }).envAliases ?? []) as string[]),
    ]),
  );

  it('every DC_* variable in the manifests is a real setting of the proxy (config.ts SETTINGS)', () => {
    const used = workloads.flatMap((w) =>
      containersOf(w).flatMap((c) => (c.env ?? []).map((e: EnvVar) => e.name)),
    );
    const dc = used.filter((n) => n.startsWith('DC_'));
    expect(dc.length).toBeGreaterThan(10);
    expect(dc.filter((n) => !known.has(n))).toEqual([]);
    // The ones the Kubernetes setup depends on are there.
    for (const n of [
      'DC_CLUSTER_PEERS_DNS',
      'DC_SHUTDOWN_DELAY',
      'DC_CACHE_ADDRESSES_AUTHORITATIVE',
      'DC_CLUSTER_ADVERTISE_URL',
    ]) {
      expect(dc, n).toContain(n);
    }
  });

  it('every $(VAR) in an env value names a variable defined before it (Kubernetes expands no other)', () => {
    const refs = proxyEnv.filter((e) => e.value?.includes('$(')).length;
    expect(refs).toBeGreaterThanOrEqual(5);
    for (const w of workloads) {
      for (const c of containersOf(w)) expect(unexpandedRefs(c.env ?? []), c.name).toEqual([]);
    }
    // The check sees a reference that comes too early.
    expect(
      unexpandedRefs([
        { name: 'A', value: 'x.$(B)' },
        { name: 'B', value: 'b' },
      ]),
    ).toEqual(['A -> $(B)']);
  });

  it('the proxy accepts the whole environment of the manifest, values included (as a pod gets it)', () => {
    const env = expandedProxyEnv({
      'metadata.namespace': 'prod',
      'metadata.name': 'dcache-5f4-q',
      'status.podIP': '10.4.0.7',
    });
    for (const e of proxyEnv) {
      const ref = e.valueFrom?.secretKeyRef;
      if (ref) env[e.name] = `stand-in-${ref.key}`;
    }
    const cfg = loadConfig({ env });
    expect(cfg.server.host).toBe('0.0.0.0');
    expect(cfg.server.port).toBe(8080);
    expect(cfg.server.shutdownDelay).toBe(10_000);
    expect(cfg.cache.addresses).toEqual(
      [0, 1, 2].map((i) => `redis-${i}.redis.prod.svc.cluster.local:6379`),
    );
    expect(cfg.cache.addressesAuthoritative).toBe(true);
    expect(cfg.cache.allowedAddresses).toEqual(['*.redis.prod.svc.cluster.local']);
    expect(cfg.cache.password).toBe('stand-in-redis-password');
    expect(cfg.cluster.peersDns).toBe('dcache-peers.prod.svc.cluster.local:8080');
    expect(cfg.cluster.advertiseUrl).toBe('http://10.4.0.7:8080');
    expect(cfg.cluster.nodeId).toBe('dcache-5f4-q');
    expect(cfg.cluster.stateFile).toBe('/data/ring.json');
    // A value the proxy refuses is caught here, naming the setting.
    expect(() => loadConfig({ env: { ...env, DC_CLUSTER_PEERS_DNS: 'dcache-peers' } })).toThrow(
      /DC_CLUSTER_PEERS_DNS/,
    );
  });

  it('secrets are referenced from the Secret, never inlined, and every key is in secrets.env.example', () => {
    const example = readFileSync(join(K8S_DIR, OVERLAY, 'secrets.env.example'), 'utf8');
    const keys = new Set<string>();
    for (const line of example.split('\n')) {
      const m = /^([a-z0-9-]+)=(.*)$/.exec(line);
      if (!m) continue;
      expect(m[2], `secrets.env.example gives ${m[1]} a value`).toBe('');
      keys.add(m[1]!);
    }
    const secretish = /(PASSWORD|TOKEN|SECRET|AUTH)$/;
    let refs = 0;
    for (const w of workloads) {
      for (const c of containersOf(w)) {
        for (const e of (c.env ?? []) as EnvVar[]) {
          if (!secretish.test(e.name)) continue;
          expect(e.value, `${c.name} ${e.name} is inlined`).toBeUndefined();
          expect(e.valueFrom?.secretKeyRef?.name, `${c.name} ${e.name}`).toBe(SECRET_NAME);
          expect(keys, `${e.name} -> ${e.valueFrom?.secretKeyRef?.key}`).toContain(
            e.valueFrom?.secretKeyRef?.key,
          );
          refs++;
        }
      }
    }
    expect(refs).toBeGreaterThanOrEqual(5);
    // Redis itself starts with requirepass from the same Secret.
    const r = containersOf(redis)[0];
    expect(r.command.join(' ')).toContain('--requirepass "$REDIS_PASSWORD"');
    expect(r.env.find((e: EnvVar) => e.name === 'REDIS_PASSWORD').valueFrom.secretKeyRef).toEqual({
      name: SECRET_NAME,
      key: 'redis-password',
    });
    // No Secret object with data ships: the overlay generates it from the untracked secrets.env.
    expect(objectsIn('.').filter((o) => o.kind === 'Secret')).toEqual([]);
    const ignored = run('git', ['check-ignore', '-q', `deploy/kubernetes/${OVERLAY}/secrets.env`]);
    expect(ignored.status, 'secrets.env must be ignored by git').toBe(0);
  });

  it('the node ids are the StatefulSet pods\u2019 DNS names, one per replica, allowed by DC_CACHE_ALLOWED_ADDRESSES', () => {
    const svc = one(base, 'Service', redis.spec.serviceName);
    expect(svc.spec.clusterIP).toBe('None');
    expect(selects(svc.spec.selector, redis.spec.template.metadata.labels)).toBe(true);
    const port = containersOf(redis)[0].ports[0].containerPort;
    expect(svc.spec.ports[0].port).toBe(port);

    const ns = 'team-cache';
    const env = expandedProxyEnv({ 'metadata.namespace': ns, 'metadata.name': 'dcache-abc' });
    const ids = env.DC_CACHE_ADDRESSES!.split(',');
    const want = Array.from(
      { length: redis.spec.replicas as number },
      (_, i) => `${redis.metadata.name}-${i}.${svc.metadata.name}.${ns}.svc.cluster.local:${port}`,
    );
    expect(ids).toEqual(want);
    // The allow-list pattern (one label for *) matches each id's host and nothing else.
    const pattern = env.DC_CACHE_ALLOWED_ADDRESSES!;
    const re = new RegExp(
      `^${pattern
        .split('.')
        .map((l) => (l === '*' ? '[A-Za-z0-9_-]+' : l.replace(/[-]/g, '\\-')))
        .join('\\.')}$`,
    );
    for (const id of ids) expect(id.split(':')[0]).toMatch(re);
    expect(`redis-0.redis.other-ns.svc.cluster.local`).not.toMatch(re);
  });

  it('peers are found through a headless Service that publishes not-ready pods, and advertise their pod IP', () => {
    const env = expandedProxyEnv({
      'metadata.namespace': 'ns1',
      'metadata.name': 'dcache-7d9-x',
      'status.podIP': '10.1.2.3',
    });
    const [host, port] = env.DC_CLUSTER_PEERS_DNS!.split(':');
    const name = host!.split('.')[0]!;
    expect(host).toBe(`${name}.ns1.svc.cluster.local`);
    const peers = one(base, 'Service', name);
    expect(peers.spec.clusterIP).toBe('None');
    expect(peers.spec.publishNotReadyAddresses).toBe(true);
    expect(selects(peers.spec.selector, proxy.spec.template.metadata.labels)).toBe(true);
    expect(String(peers.spec.ports[0].port)).toBe(port);
    expect(port).toBe(env.DC_SERVER_PORT);
    expect(env.DC_CLUSTER_ADVERTISE_URL).toBe(`http://10.1.2.3:${port}`);
    expect(env.DC_CLUSTER_NODE_ID).toBe('dcache-7d9-x');
  });
});

describe('pods', () => {
  it('run non-root, read-only, without privilege escalation, with no capabilities and RuntimeDefault seccomp', () => {
    for (const w of workloads) {
      const pod = w.spec.template.spec;
      expect(pod.securityContext.runAsNonRoot, w.metadata.name).toBe(true);
      expect(pod.securityContext.runAsUser, w.metadata.name).toBeGreaterThan(0);
      expect(pod.securityContext.seccompProfile).toEqual({ type: 'RuntimeDefault' });
      expect(pod.automountServiceAccountToken, w.metadata.name).toBe(false);
      for (const c of containersOf(w)) {
        const sc = c.securityContext;
        expect(sc.allowPrivilegeEscalation, c.name).toBe(false);
        expect(sc.readOnlyRootFilesystem, c.name).toBe(true);
        expect(sc.capabilities.drop, c.name).toEqual(['ALL']);
        expect(sc.capabilities.add ?? [], c.name).toEqual([]);
        expect(sc.privileged ?? false, c.name).toBe(false);
        for (const k of ['cpu', 'memory']) {
          expect(c.resources.requests[k], `${c.name} requests.${k}`).toBeDefined();
          expect(c.resources.limits[k], `${c.name} limits.${k}`).toBeDefined();
        }
      }
    }
  });

  it('the proxy writes only to mounted volumes: the state file lives on one', () => {
    const c = containersOf(proxy)[0];
    const state = envValue('DC_CLUSTER_STATE_FILE')!;
    const mounts = (c.volumeMounts as { mountPath: string }[]).map((m) => m.mountPath);
    expect(mounts.some((m) => state.startsWith(`${m}/`))).toBe(true);
  });

  it('the grace period covers the shutdown delay and the drain, with a margin', () => {
    const ms = (name: string) => {
      const v = parseDuration(envValue(name));
      if (v === undefined) throw new Error(`${name}: not a duration: ${envValue(name)}`);
      return v;
    };
    const delay = ms('DC_SHUTDOWN_DELAY');
    const drain = ms('DC_SERVER_SHUTDOWN_TIMEOUT');
    expect(delay).toBeGreaterThan(0);
    const grace = proxy.spec.template.spec.terminationGracePeriodSeconds * 1000;
    expect(grace).toBeGreaterThanOrEqual(delay + drain + 5_000);
    // The readiness probe notices the 503 well within the delay.
    const rp = containersOf(proxy)[0].readinessProbe;
    expect(rp.periodSeconds * rp.failureThreshold * 1000).toBeLessThan(delay);
    // A rollout never takes a serving proxy away before its replacement is ready.
    expect(proxy.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
  });

  it('each workload has a PodDisruptionBudget selecting its pods', () => {
    for (const w of workloads) {
      const pdbs = base.filter(
        (o) =>
          o.kind === 'PodDisruptionBudget' &&
          selects(o.spec.selector.matchLabels, w.spec.template.metadata.labels),
      );
      expect(pdbs, w.metadata.name).toHaveLength(1);
    }
  });
});

describe('monitoring component', () => {
  it('is generated from docker/ (scripts/gen-kubernetes-monitoring.mjs --check)', () => {
    const r = run(process.execPath, [GENERATOR, '--check']);
    expect(r.status, r.out).toBe(0);
    // And --check notices a stale file: run it on a copy of the repository files it reads.
    const copy = join(dir, 'repo');
    for (const p of ['docker', 'deploy']) {
      cpSync(join(REPO_ROOT, p), join(copy, p), { recursive: true });
    }
    writeFileSync(
      join(copy, 'docker/prometheus-rules.yml'),
      readFileSync(join(REPO_ROOT, 'docker/prometheus-rules.yml'), 'utf8').replace(
        'for: 1m',
        'for: 2m',
      ),
    );
    const stale = run(process.execPath, [GENERATOR, '--check', '--root', copy]);
    expect(stale.status).toBe(1);
    expect(stale.out).toContain('prometheus-rule.yaml');
  });

  it('the PrometheusRule holds docker/prometheus-rules.yml and the ConfigMap every dashboard, with the sidecar label', () => {
    const rule = one(monitoring, 'PrometheusRule');
    const compose = parseDocs(
      readFileSync(join(REPO_ROOT, 'docker/prometheus-rules.yml'), 'utf8'),
      '',
    )[0] as unknown as {
      groups: unknown;
    };
    expect(rule.spec.groups).toEqual(compose.groups);
    const cm = one(monitoring, 'ConfigMap');
    expect(cm.metadata.labels?.grafana_dashboard).toBe('1');
    const file = 'dcache-overview.json';
    expect(cm.data?.[file]).toBe(
      readFileSync(join(REPO_ROOT, 'docker/grafana/dashboards', file), 'utf8'),
    );
    // `kubectl apply` keeps the whole object in an annotation, which may hold 256 KiB.
    const bytes = Object.values(cm.data ?? {}).reduce((n, v) => n + Buffer.byteLength(v), 0);
    expect(bytes).toBeLessThan(256 * 1024 - 4096);
  });

  it('the ServiceMonitor scrapes the client Service only, as job "dcache" (what the rules select)', () => {
    const sm = one(monitoring, 'ServiceMonitor');
    const services = base.filter(
      (o) => o.kind === 'Service' && selects(sm.spec.selector.matchLabels, o.metadata.labels),
    );
    expect(services.map((s) => s.metadata.name)).toEqual(['dcache']);
    const svc = services[0]!;
    expect(svc.spec.clusterIP).toBeUndefined();
    expect(svc.metadata.labels?.[sm.spec.jobLabel]).toBe('dcache');
    expect(svc.spec.ports.map((p: { name: string }) => p.name)).toContain(
      sm.spec.endpoints[0].port,
    );
    expect(sm.spec.endpoints[0].path).toBe('/metrics');
    expect(readFileSync(join(REPO_ROOT, 'docker/prometheus-rules.yml'), 'utf8')).toContain(
      'up{job="dcache"}',
    );
  });
});

/** `kubectl kustomize` or `kustomize build`, when one is installed. */
function kustomizeCommand(): string[] | undefined {
  for (const cmd of [
    ['kustomize', 'build'],
    ['kubectl', 'kustomize'],
  ]) {
    const r = spawnSync(cmd[0]!, [...cmd.slice(1), '--help'], { encoding: 'utf8' });
    if (r.status === 0) return cmd;
  }
  return undefined;
}
const KUSTOMIZE = kustomizeCommand();

describe.skipIf(!KUSTOMIZE)(
  `the example overlay, rendered${KUSTOMIZE ? ` (${KUSTOMIZE.join(' ')})` : ' (SKIPPED: neither kubectl nor kustomize is installed)'}`,
  () => {
    const copy = join(dir, 'k8s');
    const render = () => {
      const r = run(KUSTOMIZE![0]!, [...KUSTOMIZE!.slice(1), join(copy, OVERLAY)]);
      return { ...r, objects: r.status === 0 ? parseDocs(r.stdout, 'rendered') : [] };
    };

    it('refuses to build without secrets.env, then builds with it', () => {
      cpSync(K8S_DIR, copy, { recursive: true });
      rmSync(join(copy, OVERLAY, 'secrets.env'), { force: true });
      const refused = render();
      expect(refused.status).not.toBe(0);
      expect(refused.out).toContain('secrets.env');
      const env = readFileSync(join(copy, OVERLAY, 'secrets.env.example'), 'utf8').replace(
        /^([a-z0-9-]+)=$/gm,
        '$1=stand-in-$1',
      );
      writeFileSync(join(copy, OVERLAY, 'secrets.env'), env);
      const built = render();
      expect(built.status, built.out).toBe(0);
      writeFileSync(join(dir, 'rendered.yaml'), built.stdout);
      const v = run(process.execPath, [VALIDATOR, join(dir, 'rendered.yaml')]);
      expect(v.status, v.out).toBe(0);
    });

    it('puts everything in the namespace and points every secret reference at the generated Secret', () => {
      const { objects, status, out } = render();
      expect(status, out).toBe(0);
      const ns = one(objects, 'Namespace').metadata.name;
      for (const o of objects.filter((x) => x.kind !== 'Namespace')) {
        expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(ns);
      }
      const secret = one(objects, 'Secret');
      expect(secret.metadata.name).toMatch(new RegExp(`^${SECRET_NAME}-[a-z0-9]+$`));
      const refs = objects
        .filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet')
        .flatMap((w) => containersOf(w).flatMap((c) => (c.env ?? []) as EnvVar[]))
        .map((e) => e.valueFrom?.secretKeyRef)
        .filter((r): r is { name: string; key: string } => r !== undefined);
      expect(refs.length).toBeGreaterThanOrEqual(5);
      for (const r of refs) {
        expect(r.name).toBe(secret.metadata.name);
        expect(Object.keys(secret.data ?? {})).toContain(r.key);
      }
      for (const w of objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet')) {
        for (const c of containersOf(w)) expect(unexpandedRefs(c.env ?? []), c.name).toEqual([]);
      }
      // The image is the overlay's, and every kind the issue asks for is there.
      const dep = one(objects, 'Deployment');
      expect(containersOf(dep)[0].image).not.toBe('dcache');
      expect(dep.spec.replicas).toBeGreaterThanOrEqual(2);
      for (const kind of [
        'StatefulSet',
        'PodDisruptionBudget',
        'ServiceMonitor',
        'PrometheusRule',
        'ConfigMap',
        'NetworkPolicy',
      ]) {
        expect(objects.map((o) => o.kind)).toContain(kind);
      }
      // The proxies' Redis names still match the Services after the overlay.
      const sts = one(objects, 'StatefulSet');
      expect(
        objects.some((o) => o.kind === 'Service' && o.metadata.name === sts.spec.serviceName),
      ).toBe(true);
    });
  },
);
