import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, registerCleanup, sleep, spawnProxy, type TestProcess } from '@dcache/test-utils';

/** Root of the repository (this file lives in test/observability/). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The built proxy entry point, run as `node packages/proxy/dist/main.js`. */
export const PROXY_MAIN = join(REPO_ROOT, 'packages/proxy/dist/main.js');

/** First existing path among `candidates` (an env override first), or undefined. */
export function findBinary(envVar: string, candidates: readonly string[]): string | undefined {
  const fromEnv = process.env[envVar];
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined;
  return candidates.find((c) => existsSync(c));
}

/** A temp directory removed by `cleanupAll()`. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  registerCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** One real proxy process (`node packages/proxy/dist/main.js`) on a fixed port, restartable. */
export class ProxyProcess {
  /** The current process (a new one after {@link restart}). */
  proc: TestProcess | undefined;
  /** Every process this handle started, oldest first (their output stays readable). */
  readonly history: TestProcess[] = [];

  constructor(
    /** Port it listens on, kept across restarts. */
    readonly port: number,
    /** DC_* environment of every start. */
    readonly env: Record<string, string>,
  ) {}

  /** `http://127.0.0.1:<port>`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts the process and waits until /health/live answers. */
  async start(): Promise<void> {
    if (this.proc?.running) throw new Error(`proxy on ${this.port} is already running`);
    this.proc = (await spawnProxy(this.env, { port: this.port, main: PROXY_MAIN })).proc;
    this.history.push(this.proc);
  }

  /** SIGTERM (graceful drain), SIGKILL after `graceMs`; resolves with the exit code. */
  async stop(graceMs = 10_000): Promise<number | string | undefined> {
    return this.proc?.stop(graceMs);
  }

  /** Output of every process this handle started. */
  output(): string {
    return this.history.map((p, i) => `--- start #${i + 1}\n${p.output()}`).join('\n');
  }
}

/**
 * Two proxies over the same Redis nodes, each listing the other as its peer with the same
 * cluster token, as compose's `cluster` profile runs them. Not started yet.
 */
export async function proxyPair(
  cacheAddresses: string,
  extraEnv: Record<string, string> = {},
  respPorts?: readonly [number, number],
): Promise<[ProxyProcess, ProxyProcess]> {
  const ports = [await freePort(), await freePort()] as const;
  const token = `obs-${process.pid}-${Date.now()}`;
  const make = (own: number, other: number, name: string, resp?: number) =>
    new ProxyProcess(own, {
      ...(resp === undefined ? {} : { DC_RESP_PORT: String(resp) }),
      DC_SERVER_HOST: '127.0.0.1',
      DC_SERVER_PORT: String(own),
      DC_CACHE_ADDRESSES: cacheAddresses,
      DC_LOGGER_LEVEL: 'warn',
      DC_CLUSTER_TOKEN: token,
      DC_CLUSTER_PEERS: `http://127.0.0.1:${other}`,
      DC_CLUSTER_ADVERTISE_URL: `http://127.0.0.1:${own}`,
      DC_CLUSTER_NODE_ID: name,
      ...extraEnv,
    });
  const pair: [ProxyProcess, ProxyProcess] = [
    make(ports[0], ports[1], 'obs-proxy-1', respPorts?.[0]),
    make(ports[1], ports[0], 'obs-proxy-2', respPorts?.[1]),
  ];
  registerCleanup(async () => {
    await Promise.all(pair.map((p) => p.stop(5_000)));
  });
  return pair;
}

/** GET `url`/metrics as text. */
export async function scrape(url: string): Promise<string> {
  const r = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) });
  if (r.status !== 200) throw new Error(`GET ${url}/metrics: ${r.status}`);
  return r.text();
}

/** One sample line of the Prometheus text format. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the sample lines of a Prometheus text exposition (comments skipped). */
export function parseMetrics(text: string): MetricSample[] {
  const out: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of dcache_http_requests_total over the cache API routes (/metrics scrapes excluded). */
export function apiRequests(text: string): number {
  return parseMetrics(text)
    .filter((s) => s.name === 'dcache_http_requests_total' && s.labels.route?.startsWith('/api/'))
    .reduce((a, s) => a + s.value, 0);
}

/** Kinds of request the mixed load sends. */
export type Op =
  | 'put'
  | 'get_hit'
  | 'get_miss'
  | 'head_hit'
  | 'delete'
  | 'batch_set'
  | 'batch_get'
  | 'keys';

/** The outcome of one request of the mixed load. */
export interface Outcome {
  op: Op;
  /** Base URL it was sent to. */
  target: string;
  status: number;
  /** Whether the status and body were what the op must return. */
  ok: boolean;
  /** Why it was not ok (status, body excerpt or network error). */
  detail?: string;
  at: number;
}

/** Options of {@link mixedLoad}. */
export interface LoadOptions {
  /** Base URLs; request i goes to targets[i % n]. */
  targets: readonly string[];
  concurrency: number;
  /** Requests per second over all workers (paced, never exceeded on average). */
  ratePerSec: number;
  maxMs: number;
  maxRequests: number;
  /** Stops the load once true. */
  until?: () => boolean;
  /** Prefix of every key this load writes, unique per run. */
  keyPrefix: string;
}

const OPS: readonly Op[] = [
  'put',
  'get_hit',
  'get_miss',
  'batch_get',
  'get_hit',
  'head_hit',
  'delete',
  'batch_set',
  'get_miss',
  'keys',
];

const JSON_HEADERS = { 'content-type': 'application/json' };

/**
 * Keys every load reads as hits; {@link seedHotKeys} writes them first and nothing
 * deletes them, so a GET of one is a 200 whatever the interleaving of workers.
 */
export function hotKeys(prefix: string): string[] {
  return Array.from({ length: 50 }, (_, i) => `${prefix}:hot:${i}`);
}

/** Writes the hot keys through `target` with one batch; throws unless all were stored. */
export async function seedHotKeys(target: string, prefix: string): Promise<void> {
  const items = Object.fromEntries(hotKeys(prefix).map((k) => [k, { value: { k } }]));
  const r = await fetch(`${target}/api/v1/cache/batch`, {
    method: 'POST',
    headers: JSON_HEADERS,
    body: JSON.stringify({ items }),
  });
  const body = await r.text();
  if (r.status !== 200) throw new Error(`seeding hot keys: ${r.status} ${body}`);
}

/** Sends one request of kind `op` and checks its status and body. */
async function one(op: Op, target: string, prefix: string, i: number): Promise<Outcome> {
  const hot = hotKeys(prefix);
  const hotKey = hot[i % hot.length]!;
  const own = `${prefix}:w:${i}`;
  const at = Date.now();
  const check = (status: number, want: number, ok: boolean, detail: string): Outcome => ({
    op,
    target,
    status,
    ok: status === want && ok,
    ...(status === want && ok ? {} : { detail: `want ${want}, got ${status}: ${detail}` }),
    at,
  });
  const call = async (path: string, init: RequestInit = {}) => {
    const r = await fetch(`${target}${path}`, { ...init, signal: AbortSignal.timeout(15_000) });
    const text = await r.text();
    return { status: r.status, text };
  };
  switch (op) {
    case 'put': {
      const r = await call(`/api/v1/cache/${encodeURIComponent(own)}`, {
        method: 'PUT',
        headers: JSON_HEADERS,
        body: JSON.stringify({ value: { i }, ttl: '5m' }),
      });
      return check(r.status, 200, r.text.includes(`"key"`), r.text.slice(0, 200));
    }
    case 'get_hit': {
      const r = await call(`/api/v1/cache/${encodeURIComponent(hotKey)}`);
      return check(r.status, 200, r.text.includes(`"k":"${hotKey}"`), r.text.slice(0, 200));
    }
    case 'head_hit': {
      const r = await call(`/api/v1/cache/${encodeURIComponent(hotKey)}`, { method: 'HEAD' });
      return check(r.status, 200, true, '');
    }
    case 'get_miss': {
      const r = await call(`/api/v1/cache/${encodeURIComponent(`${prefix}:absent:${i}`)}`);
      return check(r.status, 404, r.text.includes('KEY_NOT_FOUND'), r.text.slice(0, 200));
    }
    case 'delete': {
      // Write then delete a key only this request knows, so the DELETE must find it.
      const put = await call(`/api/v1/cache/${encodeURIComponent(own)}`, {
        method: 'PUT',
        headers: JSON_HEADERS,
        body: JSON.stringify({ value: i }),
      });
      if (put.status !== 200)
        return check(put.status, 200, false, `PUT before DELETE: ${put.text}`);
      const r = await call(`/api/v1/cache/${encodeURIComponent(own)}`, { method: 'DELETE' });
      return check(r.status, 200, r.text.includes('"deleted":true'), r.text.slice(0, 200));
    }
    case 'batch_set': {
      const items = Object.fromEntries(
        Array.from({ length: 10 }, (_, j) => [`${own}:b${j}`, { value: j, ttl: '5m' }]),
      );
      const r = await call('/api/v1/cache/batch', {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({ items }),
      });
      return check(r.status, 200, r.text.includes('"stored":10'), r.text.slice(0, 200));
    }
    case 'batch_get': {
      const keys = [...hot.slice(i % 40, (i % 40) + 8), `${prefix}:absent:b${i}`];
      const r = await call('/api/v1/cache/batch/get', {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({ keys }),
      });
      let ok = false;
      try {
        const b = JSON.parse(r.text) as { items: Record<string, unknown>; missing: string[] };
        ok = Object.keys(b.items).length === 8 && b.missing.length === 1;
      } catch {
        ok = false;
      }
      return check(r.status, 200, ok, r.text.slice(0, 200));
    }
    case 'keys': {
      const r = await call(`/api/v1/cache/keys?pattern=${encodeURIComponent(`${prefix}:hot:*`)}`);
      return check(r.status, 200, r.text.includes('"keys"'), r.text.slice(0, 200));
    }
  }
}

/**
 * Mixed, paced load (PUT, GET hit and miss, HEAD, DELETE, batch set/get, keys) spread
 * round-robin over `targets`. Bounded by `maxMs` and `maxRequests`; a network error is
 * recorded as status 0, never thrown.
 */
export async function mixedLoad(opts: LoadOptions, outcomes: Outcome[]): Promise<void> {
  const start = Date.now();
  const end = start + opts.maxMs;
  const gapMs = 1000 / opts.ratePerSec;
  let next = 0;
  const worker = async () => {
    while (Date.now() < end && next < opts.maxRequests && !opts.until?.()) {
      const i = next++;
      const due = start + i * gapMs;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      const op = OPS[i % OPS.length]!;
      const target = opts.targets[i % opts.targets.length]!;
      try {
        outcomes.push(await one(op, target, opts.keyPrefix, i));
      } catch (e) {
        outcomes.push({ op, target, status: 0, ok: false, detail: String(e), at: Date.now() });
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
}

/** Counts outcomes by op as `op: ok/total` for reports. */
export function summarize(outcomes: readonly Outcome[]): string {
  const by = new Map<Op, { ok: number; n: number }>();
  for (const o of outcomes) {
    const e = by.get(o.op) ?? { ok: 0, n: 0 };
    e.n++;
    if (o.ok) e.ok++;
    by.set(o.op, e);
  }
  return [...by].map(([op, e]) => `${op}=${e.ok}/${e.n}`).join(' ');
}
