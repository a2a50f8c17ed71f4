/** Helpers for multi-process membership tests: proxies run as `node packages/proxy/dist/main.js`. */
import { PROXY_MAIN, spawnProxy, type TestProcess } from '@dcache/test-utils';

/** The built proxy entry point. */
export const MAIN_JS = PROXY_MAIN;

/** One proxy process and how to restart it with the same settings. */
export interface ProxyProc {
  name: string;
  url: string;
  env: Record<string, string>;
  proc: TestProcess;
  /** Start it again with the same env (after stop). */
  restart(): Promise<void>;
}

/** Start a proxy process listening on `port` and wait until /health/ready answers. */
export async function startProxyProcess(
  name: string,
  port: number,
  env: Record<string, string>,
): Promise<ProxyProc> {
  const url = `http://127.0.0.1:${port}`;
  const fullEnv: Record<string, string> = {
    DC_CLUSTER_NODE_ID: name,
    DC_CLUSTER_ADVERTISE_URL: url,
    // info: the membership log lines give the time each proxy applied a change.
    DC_LOGGER_LEVEL: 'info',
    ...env,
  };
  // Ready, not just live: a peered proxy serves once it met its peers (or found them down).
  const launch = async () => (await spawnProxy(fullEnv, { port, readyPath: '/health/ready' })).proc;
  const p: ProxyProc = {
    name,
    url,
    env: fullEnv,
    proc: await launch(),
    async restart() {
      p.proc = await launch();
    },
  };
  return p;
}

/** A fully read JSON response. */
export interface JsonRes {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON fields
  body: any;
}

/** fetch + JSON, bounded by a timeout. */
export async function call(
  url: string,
  init: { method?: string; json?: unknown; body?: string; headers?: Record<string, string> } = {},
): Promise<JsonRes> {
  const headers: Record<string, string> = { ...init.headers };
  let body = init.body;
  if (init.json !== undefined) {
    body = JSON.stringify(init.json);
    headers['content-type'] = 'application/json';
  }
  const r = await fetch(url, {
    method: init.method ?? 'GET',
    headers,
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await r.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  return { status: r.status, headers: r.headers, body: parsed };
}

/** The ring version and checksum a proxy serves (X-Ring-* headers of a cheap call). */
export async function ringDigest(url: string): Promise<{ version: number; checksum: string }> {
  const r = await fetch(`${url}/health/live`, { signal: AbortSignal.timeout(5_000) });
  await r.arrayBuffer();
  return {
    version: Number(r.headers.get('x-ring-version') ?? -1),
    checksum: r.headers.get('x-ring-checksum') ?? '',
  };
}

/** The ring checksum a proxy serves. */
export async function ringChecksum(url: string): Promise<string> {
  return (await ringDigest(url)).checksum;
}

/**
 * Milliseconds from `t0` until every proxy in `urls` serves a ring that `done` accepts
 * (a checksum, or a version reached), polling every `interval` ms; throws after `timeout`.
 */
export async function timeToConverge(
  urls: readonly string[],
  done: string | ((d: { version: number; checksum: string }) => boolean),
  t0: number,
  timeout = 10_000,
  interval = 10,
): Promise<number> {
  const ok = typeof done === 'string' ? (d: { checksum: string }) => d.checksum === done : done;
  const pending = new Set(urls);
  let last = t0;
  while (pending.size > 0) {
    if (performance.now() - t0 > timeout) {
      throw new Error(`${[...pending].join(', ')} did not converge within ${timeout} ms`);
    }
    await Promise.all(
      [...pending].map(async (u) => {
        if (ok(await ringDigest(u))) {
          pending.delete(u);
          last = performance.now();
        }
      }),
    );
    if (pending.size > 0) await new Promise((r) => setTimeout(r, interval));
  }
  return last - t0;
}

/**
 * Wall-clock ms (Date.now) at which a proxy process applied the document with `checksum`,
 * read from its own log line ("ring changed by admin" or "membership merged from a peer",
 * logged right after the new snapshot is swapped in); undefined if it has not.
 */
export function appliedAt(p: ProxyProc, checksum: string): number | undefined {
  for (const line of p.proc.stdout().split('\n')) {
    if (!line.includes(checksum)) continue;
    try {
      const j = JSON.parse(line) as { msg?: string; checksum?: string; time?: number };
      if (
        j.checksum === checksum &&
        (j.msg === 'ring changed by admin' || j.msg === 'membership merged from a peer')
      ) {
        return j.time;
      }
    } catch {
      // not a log line
    }
  }
  return undefined;
}

/**
 * Milliseconds from `t0` (Date.now before the admin call) until the last of `procs` applied
 * `checksum`, from their logs: no polling load on the proxies. Throws after `timeout`.
 */
export async function timeToApply(
  procs: readonly ProxyProc[],
  checksum: string,
  t0: number,
  timeout = 10_000,
): Promise<number> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const times = procs.map((p) => appliedAt(p, checksum));
    if (times.every((t) => t !== undefined)) return Math.max(...(times as number[])) - t0;
    if (Date.now() > deadline) {
      const missing = procs.filter((_, i) => times[i] === undefined).map((p) => p.name);
      throw new Error(`${missing.join(', ')} did not apply ${checksum} within ${timeout} ms`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Run `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Median and max of a list of numbers. */
export function stats(xs: readonly number[]): { median: number; max: number; min: number } {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median =
    s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  return { median, max: s[s.length - 1] as number, min: s[0] as number };
}
