import { Redis } from 'ioredis';

/** Connection settings shared by every node. */
export interface NodeClientOptions {
  password: string;
  database: number;
  poolSize: number;
  maxRetries: number;
  connectTimeout: number;
  /** Longest pause between reconnect attempts (ms); keeps re-add after a restart quick. */
  reconnectMax?: number;
}

/** The Redis connections of one node: `poolSize` auto-pipelined ioredis clients, used in turn. */
export class NodeClient {
  readonly id: string;
  readonly address: string;
  private readonly clients: Redis[];
  private cursor = 0;
  private rotating = false;
  /** The last connection error, cleared when a connection becomes ready. */
  lastError: string | undefined;

  constructor(id: string, address: string, opts: NodeClientOptions) {
    this.id = id;
    this.address = address;
    const { host, port } = splitAddress(address);
    this.clients = Array.from(
      { length: opts.poolSize },
      () =>
        new Redis({
          host,
          port,
          ...(opts.password ? { password: opts.password } : {}),
          db: opts.database,
          enableAutoPipelining: true,
          connectTimeout: opts.connectTimeout,
          // No ioredis commandTimeout: every command goes through the Executor, whose own
          // deadline (commandTimeout) bounds it from the moment it was asked, and the prober times
          // its PINGs itself. ioredis' timer per command was a second timer on the hot path, and
          // a command it times out still waits in the connection's reply queue all the same.
          maxRetriesPerRequest: opts.maxRetries,
          // Fail fast while disconnected: no queue of commands waits on a dead node.
          enableOfflineQueue: false,
          enableReadyCheck: true,
          lazyConnect: false,
          retryStrategy: (times: number) =>
            Math.min(50 * 2 ** Math.min(times, 6), opts.reconnectMax ?? 2_000),
          reconnectOnError: () => false,
          connectionName: 'dcache',
        }),
    );
    // Surfaced per command and by the prober; the last one explains why a node cannot connect.
    for (const c of this.clients) {
      c.on('error', (e: Error) => {
        this.lastError = e.message;
      });
      c.on('ready', () => {
        this.lastError = undefined;
      });
    }
  }

  /**
   * The client for a command issued now: round-robin per event-loop turn, not per command. Every
   * command of one turn lands on the same connection and leaves in one auto-pipelined write; a
   * per-command rotation split each turn's commands into `poolSize` smaller writes (more syscalls
   * here and more reads in Redis for the same work).
   */
  redis(): Redis {
    let c = this.clients[this.cursor] as Redis;
    // A connection still reconnecting (after a node restart) would fail at once: use a ready one.
    if (c.status !== 'ready') c = this.clients.find((x) => x.status === 'ready') ?? c;
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
    await Promise.all(this.clients.map((c) => c.ping()));
  }

  /** True when at least one connection is ready. */
  get connected(): boolean {
    return this.clients.some((c) => c.status === 'ready');
  }

  /** Resolve once the first connection is ready or `ms` passed (false then). */
  waitReady(ms: number): Promise<boolean> {
    if (this.connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(t);
        for (const c of this.clients) c.off('ready', onReady);
        resolve(ok);
      };
      const onReady = () => done(true);
      const t = setTimeout(() => done(false), ms);
      for (const c of this.clients) c.once('ready', onReady);
    });
  }

  /** Close every connection (QUIT, then disconnect after a short grace). */
  async close(): Promise<void> {
    await Promise.all(
      this.clients.map(async (c) => {
        try {
          await Promise.race([c.quit(), new Promise((r) => setTimeout(r, 500))]);
        } catch {
          // already closed
        }
        c.disconnect();
      }),
    );
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
