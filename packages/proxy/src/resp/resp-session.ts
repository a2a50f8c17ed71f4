import type { Socket } from 'node:net';
import { ProtocolError, type Reply, RespParser } from '../upstream/resp/resp-parser.js';
import { encode, type Out, respError } from './resp-reply.js';

/** What a session asks of the front end for each command. */
export interface SessionHost {
  /** Answer one command (args[0] is its name); a promise when a node must be asked. */
  dispatch(s: RespSession, args: Buffer[]): Out | Promise<Out>;
  /** Count and time a command's answer (`name` as dispatched). */
  observe(args: Buffer[], out: Out, startedAt: number): void;
  /** The client stopped being read (max in-flight commands or a full socket buffer). */
  paused(): void;
  readonly maxInflight: number;
  readonly maxBulk: number;
}

const PENDING = Symbol('pending');

let nextId = 1;

/**
 * One RESP client connection: commands parsed from the socket, answered concurrently, replies
 * written strictly in request order. Replies ready in one event-loop turn leave in one write.
 * Backpressure: at `maxInflight` commands unanswered, or while the socket's buffer is full, the
 * socket is not read until replies go out.
 */
export class RespSession {
  readonly id = nextId++;
  readonly socket: Socket;
  /** AUTH done (or no password asked). */
  authed: boolean;
  /** AUTH admin <token> done: may flush. */
  admin = false;
  /** CLIENT SETNAME. */
  name: Buffer | null = null;
  readonly connectedAt = Date.now();
  private readonly host: SessionHost;
  private readonly parser: RespParser;
  private slots: (Out | typeof PENDING)[] = [];
  private head = 0;
  private out: Buffer[] = [];
  private flushQueued = false;
  private readingPaused = false;
  private closing = false;

  constructor(socket: Socket, host: SessionHost, authed: boolean) {
    this.socket = socket;
    this.host = host;
    this.authed = authed;
    this.parser = new RespParser(this.onRequest, { buffers: true, maxBulk: host.maxBulk });
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('drain', this.resume);
    socket.on('error', () => {});
  }

  /** True when the peer is this host (for protected mode). */
  get local(): boolean {
    const a = this.socket.remoteAddress ?? '';
    return a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.');
  }

  /** Reply OK to the command being answered, then close (QUIT). */
  quitAfterReply(): void {
    this.closing = true;
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.closing) return;
    try {
      this.parser.feed(chunk);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this.protocolError(e.message);
    }
  };

  private protocolError(why: string): void {
    this.closing = true;
    this.socket.off('data', this.onData);
    const parts: Buffer[] = [];
    encode(respError(`ERR Protocol error: ${why}`), parts);
    this.out.push(...parts);
    this.flush();
    this.socket.end();
  }

  private readonly onRequest = (r: Reply): void => {
    if (this.closing) return;
    if (!Array.isArray(r) || r.length === 0 || !r.every((a) => Buffer.isBuffer(a))) {
      this.protocolError(
        'expected an array of bulk strings (inline commands are not supported by dcache)',
      );
      return;
    }
    const args = r as Buffer[];
    const idx = this.slots.length;
    this.slots.push(PENDING);
    const started = performance.now();
    let res: Out | Promise<Out>;
    try {
      res = this.host.dispatch(this, args);
    } catch (e) {
      res = asError(e);
    }
    if (res instanceof Promise) {
      res.then(
        (v) => this.fill(idx, args, v, started),
        (e: unknown) => this.fill(idx, args, asError(e), started),
      );
      if (!this.readingPaused && this.slots.length - this.head >= this.host.maxInflight)
        this.pause();
    } else this.fill(idx, args, res, started);
  };

  private fill(idx: number, args: Buffer[], v: Out, started: number): void {
    this.host.observe(args, v, started);
    this.slots[idx] = v;
    if (idx !== this.head) return;
    const slots = this.slots;
    let h = this.head;
    while (h < slots.length && slots[h] !== PENDING) {
      encode(slots[h] as Out, this.out);
      h++;
    }
    if (h === slots.length) {
      this.slots = [];
      this.head = 0;
    } else this.head = h;
    if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(this.flush);
    }
    if (this.readingPaused && this.slots.length - this.head < this.host.maxInflight) this.resume();
  }

  private readonly flush = (): void => {
    this.flushQueued = false;
    const out = this.out;
    if (out.length === 0 || this.socket.destroyed) return;
    this.out = [];
    const ok = this.socket.write(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out));
    if (this.closing && this.slots.length === this.head) this.socket.end();
    else if (!ok) this.pause();
  };

  private pause(): void {
    if (this.readingPaused) return;
    this.readingPaused = true;
    this.socket.pause();
    this.host.paused();
  }

  private readonly resume = (): void => {
    if (!this.readingPaused) return;
    if (this.slots.length - this.head >= this.host.maxInflight) return;
    if (this.socket.writableNeedDrain) return;
    this.readingPaused = false;
    this.socket.resume();
  };
}

/** Any failure as an error reply (DcacheErrors carry their stable code). */
export function asError(e: unknown): Error {
  if (e instanceof Error) {
    if (e.name === 'ReplyError') return e;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[A-Z_]+$/.test(code)) {
      const kind = code === 'NO_NODES' ? 'CLUSTERDOWN' : 'ERR';
      return respError(`${kind} ${e.message} (${code})`);
    }
    return respError(`ERR ${e.message}`);
  }
  return respError(`ERR ${String(e)}`);
}
