import { connect, type Socket } from 'node:net';
import {
  CI_SAFE_ENV,
  freePort,
  type RedisCluster,
  type SpawnedProxy,
  spawnProxy,
  waitFor,
} from '@dcache/test-utils';

/** A decoded RESP2 reply: bulk strings stay Buffers, errors inside arrays stay Errors. */
export type Raw = string | number | Buffer | null | Error | Raw[];

/** A dcache process with its RESP listener on. */
export interface RespDcache {
  proxy: SpawnedProxy;
  /** HTTP base URL. */
  url: string;
  respPort: number;
}

/** Start the built proxy over `redis` with DC_RESP_PORT set; resolves when the RESP port accepts. */
export async function startRespDcache(
  redis: RedisCluster,
  env: Record<string, string> = {},
): Promise<RespDcache> {
  const respPort = await freePort();
  const proxy = await spawnProxy({
    ...CI_SAFE_ENV,
    DC_CACHE_ADDRESSES: redis.addressList,
    DC_RESP_PORT: String(respPort),
    ...env,
  });
  await waitFor(
    async () => {
      if (!proxy.proc.running) throw new Error(`proxy exited:\n${proxy.proc.output()}`);
      try {
        (await RawClient.connect(respPort)).close();
        return true;
      } catch {
        return false;
      }
    },
    { timeout: 20_000, interval: 50, message: `RESP port ${respPort} to accept` },
  );
  return { proxy, url: proxy.url, respPort };
}

/** Encode one command as a RESP array of bulk strings. */
export function encodeCommand(args: readonly (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a, 'utf8') : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Parse one RESP2 value at `pos`: [value, next], or undefined when incomplete. */
export function parseReply(buf: Buffer, pos: number): [Raw, number] | undefined {
  if (pos >= buf.length) return undefined;
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[pos] as number);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return [line, next];
    case '-':
      return [new Error(line), next];
    case ':':
      return [Number(line), next];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return undefined;
      return [Buffer.from(buf.subarray(next, next + n)), next + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const out: Raw[] = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, p);
        if (!r) return undefined;
        out.push(r[0]);
        p = r[1];
      }
      return [out, p];
    }
    default:
      throw new Error(`bad RESP type byte ${JSON.stringify(type)}`);
  }
}

/** A minimal RESP2 client on one socket: pipelined commands, replies matched in order, raw bytes. */
export class RawClient {
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting: { resolve: (r: Raw) => void; reject: (e: Error) => void }[] = [];
  /** Set once the server closed the connection. */
  closed = false;

  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      let pos = 0;
      for (;;) {
        const r = parseReply(this.buf, pos);
        if (!r) break;
        pos = r[1];
        this.waiting.shift()?.resolve(r[0]);
      }
      this.buf = this.buf.subarray(pos);
    });
    const fail = (e: Error) => {
      for (const w of this.waiting.splice(0)) w.reject(e);
    };
    sock.on('error', fail);
    sock.on('close', () => {
      this.closed = true;
      fail(new Error('connection closed'));
    });
  }

  /** Connect to 127.0.0.1:`port`. */
  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.off('error', reject);
        resolve(new RawClient(s));
      });
      s.once('error', reject);
    });
  }

  /** Send one command, resolve with its reply. */
  call(...args: (string | Buffer)[]): Promise<Raw> {
    return this.pipeline([args]).then((r) => r[0] as Raw);
  }

  /** Send commands in one write; replies in order. */
  pipeline(cmds: readonly (readonly (string | Buffer)[])[]): Promise<Raw[]> {
    const ps = cmds.map(
      () => new Promise<Raw>((resolve, reject) => this.waiting.push({ resolve, reject })),
    );
    this.sock.write(Buffer.concat(cmds.map(encodeCommand)));
    return Promise.all(ps);
  }

  /** Write raw bytes; the next reply resolves. */
  sendRaw(bytes: Buffer | string): Promise<Raw> {
    const p = new Promise<Raw>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.sock.write(bytes);
    return p;
  }

  /** Resolves when the server has closed the connection (rejects after `timeout` ms). */
  async waitClosed(timeout = 10_000): Promise<void> {
    await waitFor(() => this.closed, { timeout, interval: 20, message: 'connection close' });
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Text of a reply for assertions (Buffers as UTF-8, errors as "ERR: message"). */
export function text(r: Raw): unknown {
  if (Buffer.isBuffer(r)) return r.toString('utf8');
  if (r instanceof Error) return `ERR: ${r.message}`;
  if (Array.isArray(r)) return r.map(text);
  return r;
}

/** The node (host:port) of `redis` holding `key`, or undefined; fails when on two. */
export async function whereIs(redis: RedisCluster, key: string): Promise<string | undefined> {
  const found: string[] = [];
  for (const n of redis.nodes) if ((await n.command('EXISTS', key)) === 1) found.push(n.address);
  if (found.length > 1) throw new Error(`key ${key} on ${found.length} nodes: ${found.join(' ')}`);
  return found[0];
}
