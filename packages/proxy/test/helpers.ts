import { request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { loadConfig } from '../src/config.js';
import { type RunningServer, startServer } from '../src/server.js';

/** The proxy package directory (spawned processes run `dist/main.js` from here). */
export const PROXY_DIR = fileURLToPath(new URL('..', import.meta.url));

/** `dist/` entry points of the built proxy. */
export const MAIN_JS = fileURLToPath(new URL('../dist/main.js', import.meta.url));
/** `npm start` entry point. */
export const START_JS = fileURLToPath(new URL('../dist/start.js', import.meta.url));

/** A proxy listening on a free loopback port, plus a request helper bound to it. */
export interface TestProxy {
  server: RunningServer;
  url: string;
  /** `fetch` against the proxy, JSON body encoded when `json` is given. */
  req(method: string, path: string, init?: ReqInit): Promise<Res>;
  close(): Promise<void>;
}

/** Options of one request. */
export interface ReqInit {
  json?: unknown;
  body?: string | Uint8Array;
  headers?: Record<string, string>;
}

/** A fully read response: status, headers, text and parsed JSON (undefined when not JSON). */
export interface Res {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON fields
  body: any;
}

/**
 * Start a proxy in this process over `addresses` with settings as DC_* env names. Logs are
 * silent; health probes are slow and ejection needs many failures unless `env` says otherwise,
 * so that tests see the nodes they expect.
 */
export async function startProxy(
  addresses: readonly string[],
  env: Record<string, string> = {},
): Promise<TestProxy> {
  const config = loadConfig({
    env: {
      DC_SERVER_HOST: '127.0.0.1',
      DC_SERVER_PORT: '0',
      DC_CACHE_ADDRESSES: addresses.join(','),
      DC_LOGGER_LEVEL: 'silent',
      DC_REPLICATION_WARMUP_WINDOW: '0',
      ...env,
    },
  });
  const server = await startServer(config, { log: pino({ level: 'silent' }) });
  const url = server.url;
  return {
    server,
    url,
    req: (method, path, init) => request(url, method, path, init),
    close: () => server.close(),
  };
}

/** One HTTP request, response read whole (never throws on HTTP status). */
export async function request(
  base: string,
  method: string,
  path: string,
  init: ReqInit = {},
): Promise<Res> {
  const headers: Record<string, string> = { ...init.headers };
  let body: string | Uint8Array | undefined = init.body;
  if (init.json !== undefined) {
    body = JSON.stringify(init.json);
    headers['content-type'] ??= 'application/json';
  }
  const r = await fetch(base + path, {
    method,
    headers,
    ...(body !== undefined ? { body } : {}),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await r.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: r.status, headers: r.headers, text, body: parsed };
}

/** Percent-encode a key as one path segment. */
export const enc = (key: string) => encodeURIComponent(key);

/** The `{"error":{code,message}}` body shape, checked strictly. */
export function expectError(res: Res, status: number, code: string): void {
  const got = `${res.status} ${res.body?.error?.code} ${res.text.slice(0, 200)}`;
  if (res.status !== status || res.body?.error?.code !== code) {
    throw new Error(`expected ${status} ${code}, got ${got}`);
  }
  if (typeof res.body.error.message !== 'string' || res.body.error.message === '') {
    throw new Error(`error without a message: ${res.text}`);
  }
}

/**
 * A request whose path is sent exactly as given (no URL normalisation of `..` or `%2e`),
 * over node:http; for paths fetch would rewrite.
 */
export function rawRequest(
  base: string,
  method: string,
  path: string,
  init: { body?: string; headers?: Record<string, string> } = {},
): Promise<Res> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const r = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        method,
        path,
        headers: {
          ...(init.body !== undefined
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(init.body) }
            : {}),
          ...init.headers,
        },
        timeout: 20_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = text === '' ? undefined : JSON.parse(text);
          } catch {
            body = undefined;
          }
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers))
            if (typeof v === 'string') headers.set(k, v);
          resolve({ status: res.statusCode ?? 0, headers, text, body });
        });
        res.on('error', reject);
      },
    );
    r.on('timeout', () => r.destroy(new Error(`${method} ${path}: timeout`)));
    r.on('error', reject);
    r.end(init.body);
  });
}
