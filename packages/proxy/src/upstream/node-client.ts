import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { DcacheError } from '../errors.js';
import type { AllowDecision, NodeAllowList } from '../security/node-allow.js';
import { RedisConnection } from './resp/redis-connection.js';

/** How long a specific connection error stays the one reported over generic ones (ms). */
const STICKY_MS = 10_000;

/** Connection settings shared by every node. */
export interface NodeClientOptions {
  password: string;
  /** ACL user name (empty or absent: the default user). */
  username?: string;
  database: number;
  poolSize: number;
  connectTimeout: number;
  /** Longest pause between reconnect attempts (ms); keeps re-add after a restart quick. */
  reconnectMax?: number;
  /** Commands waiting for replies on one connection beyond which new ones fail at once. */
  maxPending?: number;
  /** TLS to every node (CA, client certificate, servername; files already read). */
  tls?: ConnectionOptions;
  /** Which addresses may get a connection at all (absent: any). */
  allow?: NodeAllowList;
  /**
   * Binary-safe connections (bulk replies as Buffers) for the RESP front end, made beside the
   * `poolSize` text ones (0 or absent: none).
   */
  rawPoolSize?: number;
}

/**
 * Where a node stands before any command: `checking` while its host name is resolved against the
 * allow-list, `open` once its connections exist, `refused` when its address is not allowed (no
 * connection is ever made; commands fail at once), `closed` after close().
 */
export type NodeClientState = 'checking' | 'open' | 'refused' | 'closed';

/** The Redis connections of one node: `poolSize` pipelined RESP connections, used in turn. */
export class NodeClient {
  readonly id: string;
  readonly address: string;
  private clients: RedisConnection[] = [];
  /** Binary-safe connections (RESP front end); empty when it is off. */
  private raw: RedisConnection[] = [];
  private cursor = 0;
  private rotating = false;
  private readonly opts: NodeClientOptions;
  private readonly waiters = new Set<(ok: boolean) => void>();
  /** See NodeClientState. */
  state: NodeClientState = 'checking';
  /** Why the address is not allowed (state `refused`). */
  refusal: string | undefined;
  /** The last connection error, cleared when a connection becomes ready. */
  lastError: string | undefined;
  /** When the last error with a specific class (tls, auth, refused…) was seen. */
  private specificAt = 0;

  constructor(id: string, address: string, opts: NodeClientOptions) {
    this.id = id;
    this.address = address;
    this.opts = opts;
    const now = opts.allow ? opts.allow.decideNow(address) : { allowed: true, reason: '' };
    if (now) this.settle(now);
    else
      void (opts.allow as NodeAllowList).decide(address).then(
        (d) => this.settle(d),
        (e: unknown) =>
          this.settle({
            allowed: false,
            reason: `allow-list check failed: ${(e as Error).message}`,
          }),
      );
  }

  /** The allow-list decided: open the connections, or refuse the node for good. */
  private settle(d: AllowDecision): void {
    if (this.state !== 'checking') return;
    if (!d.allowed) {
      this.state = 'refused';
      this.refusal = d.reason;
      this.lastError = `address not allowed: ${d.reason}`;
      this.wake(false);
      return;
    }
    this.state = 'open';
    const opts = this.opts;
    const { host, port } = splitAddress(this.address);
    const make = (buffers: boolean) =>
      new RedisConnection({
        host,
        port,
        ...(opts.username ? { username: opts.username } : {}),
        ...(opts.password ? { password: opts.password } : {}),
        ...(opts.tls ? { tls: opts.tls } : {}),
        // A name allowed because of what it resolved to is resolved and checked again on every
        // connection: a name that now points elsewhere gets no connection (and no password).
        ...(d.resolved && opts.allow ? { lookup: opts.allow.connectLookup } : {}),
        db: opts.database,
        connectTimeout: opts.connectTimeout,
        // No timer per command here: every command goes through the Executor, whose deadline
        // bounds it from the moment it was asked. Nothing queues while disconnected, and at most
        // maxPending commands wait on a connection whose node stopped answering.
        ...(opts.reconnectMax !== undefined ? { reconnectMax: opts.reconnectMax } : {}),
        ...(opts.maxPending !== undefined ? { maxPending: opts.maxPending } : {}),
        name: 'dcache',
        buffers,
      });
    this.clients = Array.from({ length: opts.poolSize }, () => make(false));
    this.raw = Array.from({ length: opts.rawPoolSize ?? 0 }, () => make(true));
    // Surfaced per command and by the prober; the last one explains why a node cannot connect.
    // A generic error (ECONNRESET after a TLS alert, "Connection is closed") does not hide a
    // specific one (the alert, WRONGPASS) seen in the last STICKY_MS: each retry repeats the
    // specific one while its cause lasts, so once it stops the generic ones show again.
    for (const c of [...this.clients, ...this.raw]) {
      c.on('error', (e: Error) => {
        const now = Date.now();
        if (errorClass(e.message) !== 'unavailable') this.specificAt = now;
        else if (
          this.lastError !== undefined &&
          errorClass(this.lastError) !== 'unavailable' &&
          now - this.specificAt < STICKY_MS
        )
          return;
        this.lastError = e.message;
      });
      c.on('ready', () => {
        this.lastError = undefined;
        this.wake(true);
      });
    }
  }

  private wake(ok: boolean): void {
    for (const w of [...this.waiters]) w(ok);
  }

  /** The failure of a command on a node without connections (refused, or still checking). */
  private noConnection(): DcacheError {
    return new DcacheError(
      'NODE_UNAVAILABLE',
      this.state === 'refused'
        ? `node ${this.id}: address not allowed (${this.refusal})`
        : `node ${this.id}: no connection (${this.state === 'closed' ? 'closed' : 'checking its address'})`,
      { node: this.id },
    );
  }

  /**
   * The client for a command issued now: round-robin per event-loop turn, not per command. Every
   * command of one turn lands on the same connection and leaves in one auto-pipelined write; a
   * per-command rotation split each turn's commands into `poolSize` smaller writes (more syscalls
   * here and more reads in Redis for the same work).
   */
  conn(): RedisConnection {
    // No connection at all (address not allowed, or not checked yet): fail at once. The Executor
    // counts it as a node failure, so health ejects the node through the normal path.
    if (this.clients.length === 0) throw this.noConnection();
    let c = this.clients[this.cursor] as RedisConnection;
    // A connection still reconnecting (after a node restart) would fail at once: use a ready one.
    if (c.status !== 'ready') c = this.clients.find((x) => x.status === 'ready') ?? c;
    if (!this.rotating && this.clients.length > 1) {
      this.rotating = true;
      setImmediate(this.rotate);
    }
    return c;
  }

  /**
   * A binary-safe connection (bulk replies as Buffers) for the RESP front end: round-robin per
   * event-loop turn like `conn()`. Fails like `conn()` while the node has no connections.
   */
  rawConn(): RedisConnection {
    const n = this.raw.length;
    if (n === 0) {
      if (this.clients.length === 0) throw this.noConnection();
      throw new Error('no binary-safe connections: the RESP front end is off');
    }
    let c = this.raw[this.cursor % n] as RedisConnection;
    if (c.status !== 'ready') c = this.raw.find((x) => x.status === 'ready') ?? c;
    if (!this.rotating && this.clients.length > 1) {
      this.rotating = true;
      setImmediate(this.rotate);
    }
    return c;
  }

  private readonly rotate = (): void => {
    this.cursor = (this.cursor + 1) % this.clients.length;
    this.rotating = false;
  };

  /** PING every connection: a node is healthy only when all of them answer. */
  async pingAll(): Promise<void> {
    if (this.clients.length === 0) throw this.noConnection();
    await Promise.all(this.clients.map((c) => c.ping()));
  }

  /** True when at least one connection is ready. */
  get connected(): boolean {
    return this.clients.some((c) => c.status === 'ready');
  }

  /** Resolve once the first connection is ready or `ms` passed (false then, or when refused). */
  waitReady(ms: number): Promise<boolean> {
    if (this.connected) return Promise.resolve(true);
    if (this.state === 'refused' || this.state === 'closed') return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(t);
        this.waiters.delete(done);
        resolve(ok);
      };
      const t = setTimeout(() => done(false), ms);
      this.waiters.add(done);
    });
  }

  /** Close every connection (QUIT, then disconnect after a short grace). */
  async close(): Promise<void> {
    this.state = 'closed';
    this.wake(false);
    await Promise.all([...this.clients, ...this.raw].map((c) => c.close(500)));
  }
}

/** True when a connection error means the credentials were refused (wrong or missing password). */
export function isAuthError(message: string | undefined): boolean {
  return message !== undefined && /WRONGPASS|NOAUTH|invalid password|AUTH failed/i.test(message);
}

/** `host:port` (or `[v6]:port`) → parts. */
export function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  let host = address.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port: Number(address.slice(i + 1)) };
}

/** Why a node cannot serve, in one word: what /health shows to callers without the admin token. */
export type NodeErrorClass =
  | 'not_allowed'
  | 'auth'
  | 'tls'
  | 'dns'
  | 'refused'
  | 'timeout'
  | 'unavailable';

/**
 * The class of a connection or command error message: the detail (addresses, ports, certificate
 * names, Redis' own words) stays for admins, the class tells anyone what kind of trouble it is.
 */
export function errorClass(message: string): NodeErrorClass {
  if (/address not allowed/i.test(message)) return 'not_allowed';
  if (isAuthError(message) || /NOPERM|WRONGPASS|invalid username/i.test(message)) return 'auth';
  if (
    /certificate|self[- ]signed|altnames|\bSSL|\bTLS|ERR_TLS|EPROTO|handshake|unable to verify|issuer|wrong version number/i.test(
      message,
    )
  )
    return 'tls';
  if (/ENOTFOUND|EAI_AGAIN|EAI_NONAME|EAI_FAIL|getaddrinfo/i.test(message)) return 'dns';
  if (/ECONNREFUSED/.test(message)) return 'refused';
  if (/timed out|ETIMEDOUT|timeout/i.test(message)) return 'timeout';
  return 'unavailable';
}

/** The TLS settings of `cache.*` as node:tls takes them; the PEM files are read here, once. */
export function redisTlsOptions(cache: {
  tls: boolean;
  tlsCa: string;
  tlsCert: string;
  tlsKey: string;
  tlsServername: string;
}): ConnectionOptions | undefined {
  if (!cache.tls) return undefined;
  return {
    ...(cache.tlsCa ? { ca: readFileSync(cache.tlsCa) } : {}),
    ...(cache.tlsCert ? { cert: readFileSync(cache.tlsCert) } : {}),
    ...(cache.tlsKey ? { key: readFileSync(cache.tlsKey) } : {}),
    ...(cache.tlsServername ? { servername: cache.tlsServername } : {}),
  };
}
