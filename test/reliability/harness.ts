import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { ERROR_CODES, ERRORS, type ErrorCode } from '@dcache/proxy';
import { FAST_HEALTH, PROXY_MAIN, spawnProxy, type TestProcess } from '@dcache/test-utils';

export { FAST_HEALTH, PROXY_MAIN };

/** True in the long form (`npm run test:soak` sets DC_SOAK=1). */
export const SOAK = process.env.DC_SOAK === '1';

/** The admin and cluster tokens the suite configures (distinct, long, easy to grep for). */
export const ADMIN_TOKEN = 'adm-7f3c1e9a2b4d6f8091a3c5e7d9b1f3a5';
/** Cluster token for `/internal/v1`. */
export const CLUSTER_TOKEN = 'clu-0e2d4c6b8a9f1e3d5c7b9a0f2e4d6c8b';

/** A proxy process (`node packages/proxy/dist/main.js`) on a loopback port. */
export interface ProxyProcess {
  proc: TestProcess;
  port: number;
  url: string;
  pid: number;
  env: Record<string, string>;
}

/** Start a proxy process from DC_* settings on a free (or the given) port; resolves when /health/live answers. */
export async function startProxy(
  env: Record<string, string>,
  opts: { port?: number; readyTimeout?: number } = {},
): Promise<ProxyProcess> {
  const p = await spawnProxy(env, opts);
  if (p.proc.pid === undefined) throw new Error('proxy process has no pid');
  return { ...p, pid: p.proc.pid };
}

/**
 * Resident set size of a process in bytes: VmRSS of /proc/<pid>/status where /proc exists
 * (Linux), else `ps -o rss=` (macOS, the BSDs), which reports kilobytes too.
 */
export function rssBytes(pid: number): number {
  if (existsSync('/proc/self/status')) {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (!m?.[1]) throw new Error(`no VmRSS for pid ${pid}`);
    return Number(m[1]) * 1024;
  }
  const out = execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).trim();
  if (!/^\d+$/.test(out)) throw new Error(`ps gave no RSS for pid ${pid}: ${JSON.stringify(out)}`);
  return Number(out) * 1024;
}

/** One HTTP/1.1 response as read off the wire. */
export interface WireResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** What a raw exchange produced: the responses parsed so far and how the connection ended. */
export interface RawResult {
  responses: WireResponse[];
  /** 'closed' when the server ended the connection, 'timeout' when we gave up, 'error' on a socket error. */
  end: 'closed' | 'timeout' | 'error';
  error?: string;
  /** Bytes received that did not form a complete response. */
  rest: string;
  ms: number;
}

/**
 * Parse as many complete HTTP/1.1 responses as `buf` holds (Content-Length or chunked bodies;
 * `noBody[i]` marks responses to HEAD). Returns them and the unparsed remainder.
 */
export function parseResponses(
  buf: Buffer,
  noBody: readonly boolean[] = [],
): { responses: WireResponse[]; rest: Buffer } {
  const responses: WireResponse[] = [];
  let at = 0;
  for (;;) {
    const headEnd = buf.indexOf('\r\n\r\n', at);
    if (headEnd < 0) break;
    const lines = buf.toString('latin1', at, headEnd).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!m) throw new Error(`not an HTTP response: ${JSON.stringify(lines[0])}`);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const status = Number(m[1]);
    let pos = headEnd + 4;
    if (status < 200) {
      // An interim response (100 Continue): the real one follows.
      at = pos;
      continue;
    }
    let body = '';
    if (noBody[responses.length] || status === 204 || status === 304) {
      // no body
    } else if (headers['transfer-encoding']?.includes('chunked')) {
      const parts: Buffer[] = [];
      let done = false;
      for (;;) {
        const eol = buf.indexOf('\r\n', pos);
        if (eol < 0) break;
        const size = Number.parseInt(buf.toString('latin1', pos, eol), 16);
        if (size === 0) {
          if (buf.length < eol + 4) break;
          pos = eol + 4;
          done = true;
          break;
        }
        if (buf.length < eol + 2 + size + 2) break;
        parts.push(buf.subarray(eol + 2, eol + 2 + size));
        pos = eol + 2 + size + 2;
      }
      if (!done) break;
      body = Buffer.concat(parts).toString('utf8');
    } else {
      const len = Number(headers['content-length'] ?? '0');
      if (buf.length < pos + len) break;
      body = buf.toString('utf8', pos, pos + len);
      pos += len;
    }
    responses.push({ status, headers, body });
    at = pos;
  }
  return { responses, rest: buf.subarray(at) };
}

/** Options of `rawExchange`. */
export interface RawOptions {
  /** Give up after this long (ms). */
  timeoutMs?: number;
  /** Half-close our side after writing (a truncated body then ends at EOF). */
  endAfterWrite?: boolean;
  /** Resolve once this many responses have been parsed (then close). */
  expect?: number;
  /** Which of the expected responses answer HEAD (no body). */
  noBody?: readonly boolean[];
}

/** Write raw bytes to the proxy and collect what comes back until the server closes, `expect` responses arrive, or the timeout. */
export function rawExchange(
  port: number,
  data: string | Buffer | readonly (string | Buffer)[],
  opts: RawOptions = {},
): Promise<RawResult> {
  const { timeoutMs = 10_000, endAfterWrite = false, expect, noBody = [] } = opts;
  const t0 = performance.now();
  return new Promise((resolve) => {
    const sock = connect({ port, host: '127.0.0.1' });
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (end: RawResult['end'], error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      let parsed: { responses: WireResponse[]; rest: Buffer };
      try {
        parsed = parseResponses(buf, noBody);
      } catch (e) {
        parsed = { responses: [], rest: buf };
        error = `${error ?? ''} ${(e as Error).message}`.trim();
      }
      resolve({
        responses: parsed.responses,
        end,
        ...(error !== undefined ? { error } : {}),
        rest: parsed.rest.toString('latin1'),
        ms: performance.now() - t0,
      });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (expect !== undefined) {
        try {
          if (parseResponses(buf, noBody).responses.length >= expect) finish('closed');
        } catch {
          // not a complete response yet
        }
      }
    });
    sock.on('end', () => finish('closed'));
    sock.on('close', () => finish('closed'));
    sock.on('error', (e: NodeJS.ErrnoException) => finish('error', e.code ?? e.message));
    sock.on('connect', () => {
      const chunks = Array.isArray(data) ? data : [data];
      for (const c of chunks) sock.write(c as string | Buffer);
      if (endAfterWrite) sock.end();
    });
  });
}

/** Why an error response breaks the catalogue contract, or undefined when it keeps it. */
export function errorBodyProblem(status: number, body: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return `status ${status}: body is not JSON: ${JSON.stringify(body.slice(0, 200))}`;
  }
  const err = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = err?.code;
  if (typeof code !== 'string' || !(ERROR_CODES as readonly string[]).includes(code)) {
    return `status ${status}: no catalogue code in ${body.slice(0, 200)}`;
  }
  if (typeof err?.message !== 'string') return `status ${status}: no message in ${body}`;
  if (ERRORS[code as ErrorCode].status !== status) {
    return `status ${status} but ${code} is documented as ${ERRORS[code as ErrorCode].status}`;
  }
  return undefined;
}

/** A fully read `fetch` response. */
export interface JsonResponse {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON fields
  body: any;
}

/** `fetch` with a JSON body and a deadline; the response is read whole. */
export async function call(
  base: string,
  method: string,
  path: string,
  init: { json?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<JsonResponse> {
  const headers: Record<string, string> = { ...init.headers };
  let body: string | undefined;
  if (init.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(init.json);
  }
  const r = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body } : {}),
    signal: AbortSignal.timeout(init.timeoutMs ?? 10_000),
  });
  const text = await r.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: r.status, headers: r.headers, text, body: parsed };
}

/** Percentile of a list (nearest rank). */
export function pct(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? 0;
}

/** Print one test's figures on a single greppable line (`[reliability:<name>] {...}`). */
export function report(name: string, figures: Record<string, unknown>): void {
  console.log(`[reliability:${name}] ${JSON.stringify(figures)}`);
}

/** Whether the proxy at `url` currently serves node `id` (its /health view). */
export async function nodeServing(url: string, id: string): Promise<boolean> {
  try {
    const h = await call(url, 'GET', '/health', { timeoutMs: 2_000 });
    const n = (h.body?.nodes as { id: string; healthy: boolean }[] | undefined)?.find(
      (x) => x.id === id,
    );
    return n?.healthy === true;
  } catch {
    return false;
  }
}
