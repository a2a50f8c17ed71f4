import { EventEmitter } from 'node:events';
import { createConnection, type LookupFunction, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { ProtocolError, type Reply, ReplyError, RespParser } from './resp-parser.js';

/** A command argument: strings are sent as UTF-8, numbers in decimal, Buffers as they are. */
export type Arg = string | number | Buffer;

/** A pipeline's results: `[error, value]` per command, in order (as ioredis gives them). */
export type PipelineResults = [Error | null, Reply][];

/** Where a connection stands; commands are accepted only when `ready`. */
export type ConnectionStatus = 'connecting' | 'ready' | 'reconnecting' | 'end';

/** How to reach one Redis server and what to do while it cannot be reached. */
export interface RespConnectionOptions {
  host: string;
  port: number;
  /** ACL user name (empty or absent: the default user). */
  username?: string;
  password?: string;
  db?: number;
  /** TLS to the server (CA, client certificate, servername); absent: plain TCP. */
  tls?: ConnectionOptions;
  /** Resolves the host name (the allow-list re-checks every connection this way). */
  lookup?: LookupFunction;
  /** From the start of a connection attempt to a finished handshake (ms). */
  connectTimeout: number;
  /** Longest pause between reconnect attempts (ms). */
  reconnectMax?: number;
  /** Commands waiting for their reply beyond which new ones fail at once (a stalled server). */
  maxPending?: number;
  /**
   * CLIENT SETNAME at connect; absent: none. With no password and no name there is no handshake,
   * and a connection is ready as soon as TCP connects (even to a stopped server).
   */
  name?: string;
  /** Bulk strings as Buffers instead of UTF-8 strings (simple strings stay strings). */
  buffers?: boolean;
}

/**
 * One reply slot in the queue: a single command (resolve with the reply, reject on an error
 * reply) or a pipeline of `left` commands whose replies fill `results` in order.
 */
interface Slot {
  resolve: (v: never) => void;
  reject: (e: Error) => void;
  results: PipelineResults | null;
  left: number;
}

/** Bytes of the coalesced write buffer beyond which it is flushed at once instead of next turn. */
const FLUSH_BYTES = 64 * 1024;
const CRLF = '\r\n';

/**
 * One pipelined RESP2 connection. Commands written in one event-loop turn leave in one write
 * (flushed by setImmediate), replies are matched to commands in order. It never queues while
 * disconnected: a command on a connection that is not ready fails at once, and so does one past
 * `maxPending` waiting replies. It reconnects by itself with exponential backoff and redoes the
 * handshake (AUTH, SELECT, CLIENT SETNAME); deadlines per call are the caller's (the Executor's).
 *
 * Events: `ready`; `error` (Error: connect, TLS, handshake or protocol failures); `close`.
 */
export class RespConnection extends EventEmitter {
  status: ConnectionStatus = 'connecting';
  private readonly opts: RespConnectionOptions;
  private socket: Socket | null = null;
  private readonly parser: RespParser;
  private queue: Slot[] = [];
  private head = 0;
  /** The coalesced write: text so far, and the parts already cut off by a Buffer argument. */
  private out = '';
  private parts: (string | Buffer)[] | null = null;
  private outBytes = 0;
  private flushing = false;
  private attempts = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private connectTimer: NodeJS.Timeout | null = null;
  private readonly maxPending: number;

  constructor(opts: RespConnectionOptions) {
    super();
    this.opts = opts;
    this.maxPending = opts.maxPending ?? 100_000;
    this.parser = new RespParser(this.onReply, { buffers: opts.buffers === true });
    this.connect();
  }

  /** Commands sent and not yet answered. */
  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Send one command; resolves with its reply, rejects with a ReplyError or a connection error. */
  send<T = Reply>(args: readonly Arg[]): Promise<T> {
    const refused = this.refusal(1);
    if (refused) return Promise.reject(refused);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ resolve: resolve as (v: never) => void, reject, results: null, left: 1 });
      this.encode(args);
    });
  }

  /** Send commands as one pipeline; resolves with `[error, value]` for each, in order. */
  sendMany(cmds: readonly (readonly Arg[])[]): Promise<PipelineResults> {
    if (cmds.length === 0) return Promise.resolve([]);
    const refused = this.refusal(cmds.length);
    if (refused) return Promise.reject(refused);
    return new Promise<PipelineResults>((resolve, reject) => {
      this.queue.push({
        resolve: resolve as (v: never) => void,
        reject,
        results: [],
        left: cmds.length,
      });
      for (const c of cmds) this.encode(c);
    });
  }

  /** Close for good: QUIT when connected (bounded by `graceMs`), then the socket. */
  async close(graceMs = 500): Promise<void> {
    if (this.status === 'end') return;
    const wasReady = this.status === 'ready';
    this.status = 'end';
    this.clearTimers();
    const s = this.socket;
    if (!s) return;
    if (wasReady && !s.destroyed) {
      await new Promise<void>((done) => {
        const t = setTimeout(done, graceMs);
        s.once('close', () => {
          clearTimeout(t);
          done();
        });
        this.queue.push({ resolve: () => {}, reject: () => {}, results: null, left: 1 });
        this.encode(['QUIT']);
      });
    }
    s.destroy();
    this.failAll(new Error('Connection is closed.'));
  }

  /** Why a command cannot be sent now, or undefined when it can. */
  private refusal(n: number): Error | undefined {
    if (this.status !== 'ready')
      return new Error(
        `connection to ${this.opts.host}:${this.opts.port} is not ready (${this.status})`,
      );
    if (this.pending + n > this.maxPending)
      return new Error(
        `node queue full: ${this.pending} commands wait for replies (the node is not answering)`,
      );
    return undefined;
  }

  private connect(): void {
    const { host, port, tls, lookup } = this.opts;
    this.attempts++;
    const s = tls
      ? tlsConnect({ ...tls, host, port, ...(lookup ? { lookup } : {}) })
      : createConnection({ host, port, ...(lookup ? { lookup } : {}) });
    this.socket = s;
    s.setNoDelay(true);
    s.setKeepAlive(true, 30_000);
    this.connectTimer = setTimeout(() => {
      s.destroy(new Error(`connect ETIMEDOUT ${host}:${port} (no ready connection in time)`));
    }, this.opts.connectTimeout);
    s.once(tls ? 'secureConnect' : 'connect', () => this.handshake());
    s.on('data', (chunk: Buffer) => {
      try {
        this.parser.feed(chunk);
      } catch (e) {
        this.emit('error', e);
        s.destroy();
      }
    });
    s.on('error', (e: Error) => this.emit('error', e));
    s.once('close', () => this.onClose(s));
  }

  /** AUTH, SELECT and SETNAME as one pipeline; ready when all of them succeed. */
  private handshake(): void {
    const o = this.opts;
    const cmds: Arg[][] = [];
    if (o.password) cmds.push(o.username ? ['AUTH', o.username, o.password] : ['AUTH', o.password]);
    if (o.db) cmds.push(['SELECT', o.db]);
    if (o.name) cmds.push(['CLIENT', 'SETNAME', o.name]);
    const done = () => {
      if (this.connectTimer) clearTimeout(this.connectTimer);
      this.connectTimer = null;
      this.attempts = 0;
      this.status = 'ready';
      this.emit('ready');
    };
    if (cmds.length === 0) {
      done();
      return;
    }
    this.queue.push({
      resolve: ((res: PipelineResults) => {
        const failed = res.find(([e]) => e !== null)?.[0];
        if (failed) {
          this.emit('error', failed);
          this.socket?.destroy();
        } else done();
      }) as (v: never) => void,
      reject: () => {},
      results: [],
      left: cmds.length,
    });
    for (const c of cmds) this.encode(c);
  }

  private onClose(s: Socket): void {
    if (s !== this.socket) return;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.socket = null;
    this.out = '';
    this.parts = null;
    this.outBytes = 0;
    this.parser.reset();
    this.failAll(new Error('Connection is closed.'));
    this.emit('close');
    if (this.status === 'end') return;
    this.status = 'reconnecting';
    const wait = Math.min(50 * 2 ** Math.min(this.attempts, 6), this.opts.reconnectMax ?? 2_000);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.status !== 'end') this.connect();
    }, wait);
  }

  private readonly onReply = (r: Reply): void => {
    const slot = this.queue[this.head];
    if (!slot) {
      this.emit('error', new ProtocolError('a reply came for no command'));
      this.socket?.destroy();
      return;
    }
    if (slot.results) {
      slot.results.push(r instanceof ReplyError ? [r, null] : [null, r]);
      if (--slot.left > 0) return;
      this.shift();
      (slot.resolve as (v: PipelineResults) => void)(slot.results);
      return;
    }
    this.shift();
    if (r instanceof ReplyError) slot.reject(r);
    else (slot.resolve as (v: Reply) => void)(r);
  };

  private shift(): void {
    this.queue[this.head++] = undefined as unknown as Slot;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  /** Reject every command waiting for a reply (the connection is gone). */
  private failAll(e: Error): void {
    const q = this.queue;
    const from = this.head;
    this.queue = [];
    this.head = 0;
    for (let i = from; i < q.length; i++) q[i]?.reject(e);
  }

  private clearTimers(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.reconnectTimer = null;
    this.connectTimer = null;
  }

  /** Append one command to the coalesced write. */
  private encode(args: readonly Arg[]): void {
    let s = `*${args.length}${CRLF}`;
    for (const a of args) {
      if (typeof a === 'string') {
        const n = Buffer.byteLength(a);
        s += `$${n}${CRLF}${a}${CRLF}`;
        this.outBytes += n;
      } else if (typeof a === 'number') {
        const t = String(a);
        s += `$${t.length}${CRLF}${t}${CRLF}`;
      } else {
        s += `$${a.length}${CRLF}`;
        this.parts ??= [];
        this.parts.push(this.out + s, a);
        this.out = '';
        s = CRLF;
        this.outBytes += a.length;
      }
    }
    this.out += s;
    if (this.outBytes >= FLUSH_BYTES) this.flush();
    else if (!this.flushing) {
      this.flushing = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushing = false;
    const s = this.socket;
    const out = this.out;
    const parts = this.parts;
    this.out = '';
    this.parts = null;
    this.outBytes = 0;
    if (!s || s.destroyed) return;
    if (parts) {
      s.cork();
      for (const p of parts) s.write(p);
      if (out) s.write(out);
      s.uncork();
    } else if (out) s.write(out);
  };
}
