import { Pool } from 'undici';
import { MAX_PEER_PAYLOAD } from './protocol.js';

/** A failed call to a peer: network error, timeout, non-2xx answer, oversized or non-JSON reply. */
export class PeerError extends Error {
  /** HTTP status when the peer answered, else undefined. */
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.name = 'PeerError';
    this.status = status;
  }
}

/** Options of a PeerClient. */
export interface PeerClientOptions {
  /** Cluster token sent as `Authorization: Bearer`. */
  token: string;
  /** Bound on one call, connect to last byte (ms). */
  timeout: number;
  /** Largest reply read (bytes). */
  maxBytes?: number;
}

/** One peer over one keep-alive undici Pool; `call` sends JSON and reads bounded JSON back. */
export class PeerClient {
  readonly url: string;
  private readonly pool: Pool;
  private readonly prefix: string;
  private readonly opts: PeerClientOptions;

  constructor(url: string, opts: PeerClientOptions) {
    const u = new URL(url);
    this.url = url;
    this.prefix = u.pathname.replace(/\/+$/, '');
    this.opts = opts;
    this.pool = new Pool(u.origin, {
      connections: 4,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: opts.timeout,
      bodyTimeout: opts.timeout,
      connect: { timeout: opts.timeout },
    });
  }

  /** One call; resolves the parsed JSON reply of a 2xx, throws PeerError otherwise. */
  async call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const max = this.opts.maxBytes ?? MAX_PEER_PAYLOAD;
    const signal = AbortSignal.timeout(this.opts.timeout);
    let res: Awaited<ReturnType<Pool['request']>>;
    try {
      res = await this.pool.request({
        method,
        path: this.prefix + path,
        headers: {
          authorization: `Bearer ${this.opts.token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal,
      });
    } catch (e) {
      throw new PeerError(describe(e));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > max) {
          res.body.destroy();
          throw new PeerError(`reply larger than ${max} bytes`, res.statusCode);
        }
        chunks.push(chunk as Buffer);
      }
    } catch (e) {
      if (e instanceof PeerError) throw e;
      throw new PeerError(describe(e), res.statusCode);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new PeerError(`HTTP ${res.statusCode}: reply is not JSON`, res.statusCode);
    }
    if (res.statusCode < 200 || res.statusCode > 299) {
      const err = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      const code = typeof err?.code === 'string' ? ` ${err.code}` : '';
      const msg = typeof err?.message === 'string' ? `: ${err.message.slice(0, 200)}` : '';
      throw new PeerError(`HTTP ${res.statusCode}${code}${msg}`, res.statusCode);
    }
    return json;
  }

  /** Close the pool's connections once in-flight calls finish. */
  async close(): Promise<void> {
    await this.pool.close().catch(() => this.pool.destroy());
  }

  /** Close the pool now, failing in-flight calls (shutdown). */
  async destroy(): Promise<void> {
    await this.pool.destroy().catch(() => {});
  }
}

function describe(e: unknown): string {
  const err = e as { name?: string; code?: string; message?: string };
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError') return 'timeout';
  return err?.code ? `${err.code}: ${err.message ?? ''}`.trim() : String(err?.message ?? e);
}
