import { type Arg, type PipelineResults, RespConnection } from './resp-connection.js';

/** The commands the proxy sends to a node, queued for one write and answered in order. */
export class Pipeline {
  private readonly cmds: Arg[][] = [];
  private readonly conn: RespConnection;

  constructor(conn: RespConnection) {
    this.conn = conn;
  }

  /** Number of commands queued so far. */
  get length(): number {
    return this.cmds.length;
  }

  /** GET key. */
  get(key: string): this {
    this.cmds.push(['GET', key]);
    return this;
  }

  /** SET key value [options…] (PX ms, NX, GET…). */
  set(key: string, value: string | Buffer, ...opts: Arg[]): this {
    this.cmds.push(['SET', key, value, ...opts]);
    return this;
  }

  /** DEL key. */
  del(...keys: string[]): this {
    this.cmds.push(['DEL', ...keys]);
    return this;
  }

  /** UNLINK key. */
  unlink(...keys: string[]): this {
    this.cmds.push(['UNLINK', ...keys]);
    return this;
  }

  /** PTTL key. */
  pttl(key: string): this {
    this.cmds.push(['PTTL', key]);
    return this;
  }

  /** Send them all; `[error, value]` per command, in order. */
  exec(): Promise<PipelineResults> {
    return this.conn.sendMany(this.cmds);
  }
}

/** A RESP connection with the typed commands the proxy uses on data and control paths. */
export class RedisConnection extends RespConnection {
  /** GET key: the value, or null. */
  get(key: string): Promise<string | null> {
    return this.send(['GET', key]);
  }

  /** SET key value [options…]: 'OK', null (NX not set), or the old value (with GET). */
  set(key: string, value: string | Buffer, ...opts: Arg[]): Promise<string | null> {
    return this.send(opts.length === 0 ? ['SET', key, value] : ['SET', key, value, ...opts]);
  }

  /** DEL keys: how many existed. */
  del(...keys: string[]): Promise<number> {
    return this.send(['DEL', ...keys]);
  }

  /** UNLINK keys: how many existed. */
  unlink(...keys: string[]): Promise<number> {
    return this.send(['UNLINK', ...keys]);
  }

  /** EXISTS keys: how many exist. */
  exists(...keys: string[]): Promise<number> {
    return this.send(['EXISTS', ...keys]);
  }

  /** MGET keys: a value or null per key, in order. */
  mget(keys: readonly string[]): Promise<(string | null)[]> {
    return this.send(['MGET', ...keys]);
  }

  /** PTTL key: ms left, -1 without expiry, -2 when missing. */
  pttl(key: string): Promise<number> {
    return this.send(['PTTL', key]);
  }

  /** PING: 'PONG'. */
  ping(): Promise<string> {
    return this.send(['PING']);
  }

  /** ROLE: ['master', …] or ['slave', …]. */
  role(): Promise<unknown[]> {
    return this.send(['ROLE']);
  }

  /** INFO section. */
  info(section: string): Promise<string> {
    return this.send(['INFO', section]);
  }

  /** FLUSHDB [ASYNC|SYNC]. */
  flushdb(mode?: 'ASYNC' | 'SYNC'): Promise<string> {
    return this.send(mode ? ['FLUSHDB', mode] : ['FLUSHDB']);
  }

  /** SCAN cursor [options…]: [next cursor, keys]. */
  scan(cursor: string, ...opts: Arg[]): Promise<[string, string[]]> {
    return this.send(['SCAN', cursor, ...opts]);
  }

  /** A pipeline on this connection. */
  pipeline(): Pipeline {
    return new Pipeline(this);
  }
}
