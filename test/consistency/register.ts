/**
 * A register checker for the cluster: writers and readers on several proxies record every call
 * (key, value, start, end); `check` counts the stale reads. A read is stale when it returns a value
 * older than one whose write (or a delete) was acknowledged, through any proxy, before the read
 * began. Each key has one writer at a time writing increasing sequence numbers, so "older" is a
 * smaller number, and a write's acknowledgement orders it before every later call.
 */
import { Redis } from 'ioredis';
import { Agent, request } from 'undici';

/** One recorded call. */
export interface Op {
  kind: 'put' | 'del' | 'get';
  /** Set when the call went over RESP (else HTTP). */
  resp?: true;
  key: string;
  /** The sequence number written (put/del), or read (get; undefined on a miss). */
  seq: number | undefined;
  /** The call succeeded (2xx, or 404 for a get = a miss). */
  ok: boolean;
  start: number;
  end: number;
  proxy: number;
  phase: string;
  /** HTTP status (0: no answer) and error code of a failed call. */
  status?: number;
  code?: string;
  /** The routing epoch the proxy answered with (X-Ring-Version). */
  epoch?: number;
}

/** Counts for one phase of a scenario. */
export interface PhaseCounts {
  reads: number;
  stale: number;
  misses: number;
  errors: number;
  writes: number;
  write_errors: number;
  /** Failed calls by error code. */
  codes: Record<string, number>;
}

/** A stale read with the write it missed. */
export interface StaleRead {
  key: string;
  read: number;
  newest_acked: number;
  proxy: number;
  phase: string;
  at: number;
}

const agent = new Agent({ connections: 64, keepAliveTimeout: 10_000, pipelining: 1 });

/** One HTTP call; never throws (errors become status 0). */
async function http(
  url: string,
  method: string,
  body?: unknown,
): Promise<{ status: number; text: string; epoch?: number }> {
  try {
    const r = await request(url, {
      method: method as 'GET',
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      headersTimeout: 5_000,
      bodyTimeout: 5_000,
      dispatcher: agent,
    });
    const v = Number(r.headers['x-ring-version']);
    return {
      status: r.statusCode,
      text: await r.body.text(),
      ...(Number.isFinite(v) ? { epoch: v } : {}),
    };
  } catch {
    return { status: 0, text: '' };
  }
}

/**
 * One call over RESP with the answer shaped as the HTTP one: 200 with the REST body on a hit or
 * an acknowledged write, 404 on a miss (or a DEL of nothing), 503 with the `(CODE)` an error
 * reply names, 0 when no answer came. Never throws.
 */
async function resp(
  c: Redis,
  kind: 'get' | 'put' | 'del',
  key: string,
  seq: number,
): Promise<{ status: number; text: string }> {
  try {
    if (kind === 'get') {
      const v = await c.get(key);
      return v === null ? { status: 404, text: '' } : { status: 200, text: `{"value":${v}}` };
    }
    if (kind === 'put') {
      await c.set(key, String(seq));
      return { status: 200, text: '' };
    }
    return (await c.del(key)) > 0 ? { status: 200, text: '' } : { status: 404, text: '' };
  } catch (e) {
    const m = /\(([A-Z_]+)\)/.exec((e as Error).message);
    const code = m?.[1] ?? ((e as Error).name === 'ReplyError' ? 'RESP_ERROR' : 'NO_ANSWER');
    return { status: code === 'NO_ANSWER' ? 0 : 503, text: JSON.stringify({ error: { code } }) };
  }
}

/** Options of a workload. */
export interface WorkloadOptions {
  urls: readonly string[];
  keys: readonly string[];
  /** Readers per proxy. */
  readersPerProxy: number;
  /** Every n-th write of a key is a delete (0: never). */
  deleteEvery?: number;
  /** Proxy that writes key i (default i % proxies). */
  writerOf?: (keyIndex: number) => number;
  /**
   * RESP ports of the proxies (DC_RESP_PORT): when given, writers of odd keys and odd readers
   * talk RESP, the others HTTP, so both front ends read and write the same keys.
   */
  respPorts?: readonly number[];
}

/** Writers and readers running until `stop()`; `phase` labels what they record. */
export class Workload {
  readonly ops: Op[] = [];
  /** What the scenario did, when (same clock as the ops): for explaining a stale read. */
  readonly events: { at: number; what: string }[] = [];
  phase = 'before';
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly t0 = performance.now();
  /** RESP connections by proxy (only with `respPorts`). */
  private readonly clients: Redis[] = [];
  /** Wall clock of the workload's time 0 (proxies log wall-clock times). */
  readonly epoch = Date.now();

  constructor(private readonly o: WorkloadOptions) {}

  /** Start one writer per key and `readersPerProxy` readers on every proxy. */
  start(): this {
    const { urls, keys } = this.o;
    keys.forEach((key, i) => {
      const proxy = this.o.writerOf?.(i) ?? i % urls.length;
      this.loops.push(this.writer(key, proxy));
    });
    urls.forEach((_, p) => {
      for (let r = 0; r < this.o.readersPerProxy; r++) this.loops.push(this.reader(p, r));
    });
    return this;
  }

  /** Stop every loop and wait for the calls in flight. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const c of this.clients) c.disconnect();
  }

  /** A RESP client of `proxy` when the call should go over RESP (`odd`), else undefined. */
  private respOf(proxy: number, odd: boolean): Redis | undefined {
    const port = this.o.respPorts?.[proxy];
    if (port === undefined || !odd) return undefined;
    let c = this.clients[proxy];
    if (!c) {
      c = new Redis({ port, host: '127.0.0.1', commandTimeout: 5_000, maxRetriesPerRequest: 0 });
      c.on('error', () => {});
      this.clients[proxy] = c;
    }
    return c;
  }

  /** Note a step of the scenario (a fault, a wait that ended). */
  event(what: string): void {
    this.events.push({ at: Math.round(this.now()), what });
  }

  private now(): number {
    return performance.now() - this.t0;
  }

  /** Keep one call's outcome (`end`: when its answer was read). */
  private record(
    kind: Op['kind'],
    key: string,
    seq: number | undefined,
    ok: boolean,
    start: number,
    end: number,
    proxy: number,
    phase: string,
    r: { status: number; text: string; epoch?: number },
    viaResp = false,
  ): void {
    this.ops.push({
      ...(viaResp ? { resp: true as const } : {}),
      kind,
      key,
      seq,
      ok,
      start,
      end,
      proxy,
      phase,
      ...failure(r),
      ...(r.epoch === undefined ? {} : { epoch: r.epoch }),
    });
  }

  private async writer(key: string, proxy: number): Promise<void> {
    const url = `${this.o.urls[proxy]}/api/v1/cache/${encodeURIComponent(key)}`;
    const rc = this.respOf(proxy, this.o.keys.indexOf(key) % 2 === 1);
    const every = this.o.deleteEvery ?? 0;
    for (let seq = 1; this.running; seq++) {
      const del = every > 0 && seq % every === 0;
      const phase = this.phase;
      const start = this.now();
      const r = rc
        ? await resp(rc, del ? 'del' : 'put', key, seq)
        : del
          ? await http(url, 'DELETE')
          : await http(url, 'PUT', { value: seq });
      const end = this.now();
      // A delete of an absent key (404) is acknowledged as well: the key is absent after it.
      const ok = r.status === 200 || (del && r.status === 404);
      this.record(del ? 'del' : 'put', key, seq, ok, start, end, proxy, phase, r, rc !== undefined);
      if (!ok) await pause(5);
    }
  }

  private async reader(proxy: number, r: number): Promise<void> {
    const { keys } = this.o;
    const rc = this.respOf(proxy, r % 2 === 1);
    for (let i = r; this.running; i++) {
      const key = keys[(i * 7 + proxy) % keys.length] as string;
      const phase = this.phase;
      const start = this.now();
      const res = rc
        ? await resp(rc, 'get', key, 0)
        : await http(`${this.o.urls[proxy]}/api/v1/cache/${encodeURIComponent(key)}`, 'GET');
      const end = this.now();
      let seq: number | undefined;
      if (res.status === 200) seq = (JSON.parse(res.text) as { value: number }).value;
      const ok = res.status === 200 || res.status === 404;
      this.record('get', key, seq, ok, start, end, proxy, phase, res, rc !== undefined);
      if (!ok) await pause(5);
    }
  }
}

/** Status and catalogue code of a failed call, for the error table. */
function failure(r: { status: number; text: string }): { status?: number; code?: string } {
  if (r.status === 200 || r.status === 404) return {};
  let code = r.status === 0 ? 'NO_ANSWER' : String(r.status);
  try {
    code = (JSON.parse(r.text) as { error: { code: string } }).error.code;
  } catch {}
  return { status: r.status, code };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Count reads, stale reads, misses and errors per phase. */
export function check(ops: readonly Op[]): {
  phases: Record<string, PhaseCounts>;
  stale: StaleRead[];
} {
  // Acknowledged writes per key, in acknowledgement order (one writer per key: also seq order).
  const acked = new Map<string, { end: number; seq: number }[]>();
  for (const o of ops) {
    if (o.kind === 'get' || !o.ok || o.seq === undefined) continue;
    const list = acked.get(o.key) ?? [];
    list.push({ end: o.end, seq: o.seq });
    acked.set(o.key, list);
  }
  for (const list of acked.values()) list.sort((a, b) => a.end - b.end);
  const phases: Record<string, PhaseCounts> = {};
  const stale: StaleRead[] = [];
  const counts = (p: string) => {
    phases[p] ??= {
      reads: 0,
      stale: 0,
      misses: 0,
      errors: 0,
      writes: 0,
      write_errors: 0,
      codes: {},
    };
    return phases[p];
  };
  for (const o of ops) {
    const c = counts(o.phase);
    if (!o.ok) c.codes[o.code ?? '?'] = (c.codes[o.code ?? '?'] ?? 0) + 1;
    if (o.kind !== 'get') {
      c.writes++;
      if (!o.ok) c.write_errors++;
      continue;
    }
    c.reads++;
    if (!o.ok) {
      c.errors++;
      continue;
    }
    if (o.seq === undefined) {
      c.misses++;
      continue;
    }
    // The newest write acknowledged before this read began.
    const list = acked.get(o.key) ?? [];
    let newest = 0;
    for (const w of list) {
      if (w.end >= o.start) break;
      newest = w.seq;
    }
    if (o.seq < newest) {
      c.stale++;
      stale.push({
        key: o.key,
        read: o.seq,
        newest_acked: newest,
        proxy: o.proxy,
        phase: o.phase,
        at: Math.round(o.start),
      });
    }
  }
  return { phases, stale };
}

/** What happened around a stale read: the key's calls and the scenario's steps near it. */
export function explain(w: Workload, s: StaleRead, spanMs = 1_500, eventSpanMs = 15_000): string {
  const near = (t: number) => Math.abs(t - s.at) <= spanMs;
  const calls = w.ops
    .filter((o) => o.key === s.key && (near(o.start) || near(o.end)))
    .map(
      (o) =>
        `${Math.round(o.start)}-${Math.round(o.end)} p${o.proxy}@${o.epoch ?? '?'} ${o.kind} ${o.seq ?? '-'}${o.ok ? '' : ` ${o.code}`}`,
    );
  const source = w.ops.find((o) => o.key === s.key && o.kind === 'put' && o.seq === s.read);
  const wrote = source
    ? `${Math.round(source.start)}-${Math.round(source.end)} p${source.proxy}@${source.epoch ?? '?'} ${source.ok ? 'ok' : source.code}`
    : 'not found';
  const events = w.events
    .filter((e) => Math.abs(e.at - s.at) <= eventSpanMs)
    .map((e) => `${e.at} ${e.what}`);
  return `stale read of ${s.key} (${s.read} < ${s.newest_acked}) through p${s.proxy} at ${s.at} (epoch ${w.epoch + s.at}); ${s.read} was written ${wrote}\n  events: ${events.join(' | ')}\n  calls: ${calls.join(' | ')}`;
}
