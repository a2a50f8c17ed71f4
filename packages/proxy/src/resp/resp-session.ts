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

/** Reply bytes waiting for the next write beyond which no further command is started. */
const HIGH_WATER = 4 * 1024 * 1024;

let nextId = 1;

/**
 * One RESP client connection: commands parsed from the socket, answered concurrently, replies
 * written strictly in request order. Replies ready in one event-loop turn leave in one write.
 * Backpressure: at most `maxInflight` commands are being answered at once, none is started while
 * the client does not read its replies (socket buffer full), and the socket is not read while
 * `maxInflight` parsed commands wait to start.
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
  private outBytes = 0;
  /** Commands parsed and not started yet (from waitHead on). */
  private waiting: Buffer[][] = [];
  private waitHead = 0;
  private pumping = false;
  /** A started command that has not reached its node yet: later ones wait for it (ordering). */
  private held: Promise<void> | undefined;
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
    socket.on('drain', this.onDrain);
    socket.on('error', () => {});
  }

  /** True when the peer is this host (for protected mode). */
  get local(): boolean {
    const a = this.socket.remoteAddress ?? '';
    return a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.');
  }

  /** Start no further command until `sent` settles (the current one is not sent yet). */
  hold(sent: Promise<void>): void {
    this.held = sent;
    sent.then(() => {
      if (this.held === sent) this.held = undefined;
      this.pump();
    });
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
    this.waiting.push(r as Buffer[]);
    this.pump();
    // Commands parsed but not started are held here; past a limit, stop reading the socket.
    if (this.waiting.length >= this.host.maxInflight) this.pause();
  };

  /** Commands being answered (dispatched, reply not written yet). */
  private get inflight(): number {
    return this.slots.length - this.head;
  }

  /**
   * Start waiting commands while fewer than maxInflight are being answered and the client reads
   * its replies: a client that pipelines deeply or stops reading holds at most maxInflight
   * replies in the proxy, never its whole backlog.
   */
  private pump(): void {
    const max = this.host.maxInflight;
    while (
      this.waitHead < this.waiting.length &&
      this.inflight < max &&
      this.held === undefined &&
      !this.congested()
    ) {
      const args = this.waiting[this.waitHead++] as Buffer[];
      this.start(args);
      if (this.closing) break;
    }
    if (this.waitHead === this.waiting.length) {
      this.waiting = [];
      this.waitHead = 0;
    }
    if (this.readingPaused) this.resume();
  }

  private congested(): boolean {
    return this.socket.writableNeedDrain || (this.out.length > 0 && this.outBytes > HIGH_WATER);
  }

  private start(args: Buffer[]): void {
    const idx = this.slots.length;
    this.slots.push(PENDING);
    const started = performance.now();
    let res: Out | Promise<Out>;
    try {
      res = this.host.dispatch(this, args);
    } catch (e) {
      res = asError(e);
    }
    if (res instanceof Promise)
      res.then(
        (v) => this.fill(idx, args, v, started),
        (e: unknown) => this.fill(idx, args, asError(e), started),
      );
    else this.fill(idx, args, res, started);
  }

  private fill(idx: number, args: Buffer[], v: Out, started: number): void {
    this.host.observe(args, v, started);
    this.slots[idx] = v;
    if (idx !== this.head) return;
    const slots = this.slots;
    let h = this.head;
    const before = this.out.length;
    while (h < slots.length && slots[h] !== PENDING) {
      encode(slots[h] as Out, this.out);
      h++;
    }
    for (let i = before; i < this.out.length; i++) this.outBytes += (this.out[i] as Buffer).length;
    if (h === slots.length) {
      this.slots = [];
      this.head = 0;
    } else this.head = h;
    if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(this.flush);
    }
    // Replies left the in-flight window: start more (a synchronous reply re-enters here
    // through start(); pump's loop handles that one).
    if (!this.pumping) {
      this.pumping = true;
      try {
        this.pump();
      } finally {
        this.pumping = false;
      }
    }
  }

  private readonly flush = (): void => {
    this.flushQueued = false;
    const out = this.out;
    if (out.length === 0 || this.socket.destroyed) return;
    this.out = [];
    this.outBytes = 0;
    this.socket.write(out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out));
    if (this.closing && this.inflight === 0) this.socket.end();
    else if (this.socket.writableNeedDrain) this.pause();
    else this.pump();
  };

  private pause(): void {
    if (this.readingPaused) return;
    this.readingPaused = true;
    this.socket.pause();
    this.host.paused();
  }

  /** Read the socket again once its commands are started and its replies are being read. */
  private resume(): void {
    if (!this.readingPaused || this.closing) return;
    if (this.waiting.length - this.waitHead >= this.host.maxInflight) return;
    if (this.socket.writableNeedDrain) return;
    this.readingPaused = false;
    this.socket.resume();
  }

  private readonly onDrain = (): void => {
    this.pump();
  };
}

/** Any failure as an error reply (DcacheErrors carry their stable code). */
export function asError(e: unknown): Error {
  if (e instanceof Error) {
    if (e.name === 'ReplyError') return e;
    const code = (e as { code?: unknown }).code;
    // A node's own error reply (WRONGTYPE…) that went through the executor: pass it on as is.
    const own = code === 'NODE_ERROR' ? /^node \S+: ([A-Z]+ .*)$/s.exec(e.message) : null;
    if (own) return respError(own[1] as string);
    if (typeof code === 'string' && /^[A-Z_]+$/.test(code)) {
      const kind = code === 'NO_NODES' ? 'CLUSTERDOWN' : 'ERR';
      return respError(`${kind} ${e.message} (${code})`);
    }
    return respError(`ERR ${e.message}`);
  }
  return respError(`ERR ${String(e)}`);
}
