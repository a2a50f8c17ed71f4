import { isUtf8 } from 'node:buffer';
import { safeEqual } from '../auth.js';
import type { CacheService } from '../cache-service.js';
import { DcacheError } from '../errors.js';
import type { RedisOp } from '../metrics.js';
import type { Routing } from '../router.js';
import type { Runtime } from '../runtime.js';
import { decodeCursor, encodeCursor, scanKeys } from '../scan.js';
import { isUnhealthyReply } from '../upstream/redis-errors.js';
import type { Reply } from '../upstream/resp/resp-parser.js';
import { arityOk, type CommandSpec, type CommandTable, keyIndexes } from './command-table.js';
import { bulk, type Out, respError } from './resp-reply.js';
import type { RespSession } from './resp-session.js';

/** Commands refused by name, with the reason the error gives (docs/resp.md lists them). */
export const REFUSED: Readonly<Record<string, string>> = {
  multi: 'transactions span nodes',
  exec: 'transactions span nodes',
  discard: 'transactions span nodes',
  watch: 'transactions span nodes',
  unwatch: 'transactions span nodes',
  subscribe: 'pub/sub is not proxied',
  psubscribe: 'pub/sub is not proxied',
  ssubscribe: 'pub/sub is not proxied',
  unsubscribe: 'pub/sub is not proxied',
  punsubscribe: 'pub/sub is not proxied',
  sunsubscribe: 'pub/sub is not proxied',
  publish: 'pub/sub is not proxied',
  spublish: 'pub/sub is not proxied',
  pubsub: 'pub/sub is not proxied',
  monitor: 'MONITOR is not proxied',
  keys: 'KEYS blocks every node; use SCAN',
  randomkey: 'no single node answers it',
  swapdb: 'dcache serves database 0 only',
  move: 'dcache serves database 0 only',
  copy: 'COPY with DB may leave database 0',
  migrate: 'nodes are managed through the ring',
  wait: 'replication is dcache’s own',
  waitaof: 'replication is dcache’s own',
  reset: 'connection state is the proxy’s',
};

/** Reasons by command flag (admin, blocking, pub/sub). */
const REFUSED_FLAGS: Readonly<Record<string, string>> = {
  admin: 'server administration goes to the nodes, not through the proxy',
  blocking: 'blocking commands would hold a node connection shared by every client',
  pubsub: 'pub/sub is not proxied',
};

/** Commands answered by the proxy itself (documented with the command table). */
export const LOCAL_COMMANDS = [
  'ping',
  'echo',
  'quit',
  'select',
  'auth',
  'hello',
  'info',
  'dbsize',
  'scan',
  'flushall',
  'flushdb',
  'client',
  'command',
  'time',
  'mget',
  'mset',
  'del',
  'unlink',
  'exists',
  'touch',
] as const;

/** Commands answered before AUTH when a password is set. */
const BEFORE_AUTH = new Set(['auth', 'hello', 'quit', 'ping']);

const OK = 'OK';
const lower = (b: Buffer | undefined): string => (b ? b.toString('latin1').toLowerCase() : '');
const arity = (name: string) => respError(`ERR wrong number of arguments for '${name}' command`);
const syntax = () => respError('ERR syntax error');

/** Everything the command layer reads: the runtime and the binary-safe cache service. */
export interface RespDeps {
  rt: Runtime;
  cache: CacheService<Buffer>;
  table(): CommandTable | undefined;
  /** RESP clients connected now (INFO). */
  clients(): number;
  version: string;
  port(): number;
}

/** The RESP front end's commands: local ones, split multi-key ones, and forwarding by key. */
export class RespCommands {
  private readonly d: RespDeps;
  private readonly getLimits: { maxBytes: number; chunkKeys: number };

  constructor(d: RespDeps) {
    this.d = d;
    const l = d.rt.config.limits;
    this.getLimits = {
      maxBytes: l.maxBatchResponseBytes,
      chunkKeys: Math.min(256, Math.max(16, Math.floor(l.maxBatchResponseBytes / l.maxValueBytes))),
    };
  }

  /** Answer one command. */
  dispatch(s: RespSession, args: Buffer[]): Out | Promise<Out> {
    const name = lower(args[0]);
    if (!s.authed && !BEFORE_AUTH.has(name)) return respError('NOAUTH Authentication required.');
    switch (name) {
      case 'get':
        if (args.length !== 2) return arity(name);
        return this.d.cache.get(this.key(args[1] as Buffer));
      case 'set': {
        const ttl = plainSetTtl(args);
        if (ttl === undefined) return this.forward(s, name, args);
        return this.d.cache.set(this.key(args[1] as Buffer), args[2] as Buffer, ttl).then(() => OK);
      }
      case 'ping':
        if (args.length > 2) return arity(name);
        return args.length === 2 ? (args[1] as Buffer) : 'PONG';
      case 'echo':
        return args.length === 2 ? (args[1] as Buffer) : arity(name);
      case 'quit':
        s.quitAfterReply();
        return OK;
      case 'select':
        if (args.length !== 2) return arity(name);
        return lower(args[1]) === '0' ? OK : respError('ERR DB index is out of range');
      case 'auth':
        if (args.length < 2 || args.length > 3) return arity(name);
        return this.auth(
          s,
          args.length === 3 ? args[1] : undefined,
          args[args.length - 1] as Buffer,
        );
      case 'hello':
        return this.hello(s, args);
      case 'info':
        return this.info();
      case 'dbsize':
        return args.length === 1 ? this.dbsize() : arity(name);
      case 'scan':
        return this.scan(args);
      case 'flushall':
      case 'flushdb':
        return this.flush(s, name, args);
      case 'client':
        return this.client(s, args);
      case 'command':
        return this.command(args);
      case 'time':
        return args.length === 1 ? this.anyNode('command', args) : arity(name);
      case 'mget':
        return args.length < 2 ? arity(name) : this.mget(args);
      case 'mset':
        return args.length < 3 || args.length % 2 === 0 ? arity(name) : this.mset(args);
      case 'del':
      case 'unlink':
        return args.length < 2 ? arity(name) : this.del(args);
      case 'exists':
      case 'touch':
        return args.length < 2 ? arity(name) : this.count(name, args);
      default:
        return this.forward(s, name, args);
    }
  }

  /** A key as the ring hashes it: valid UTF-8, at most limits.max_key_bytes. */
  private key(b: Buffer): string {
    if (b.length > this.d.rt.config.limits.maxKeyBytes)
      throw respError(
        `ERR key is longer than limits.max_key_bytes (${this.d.rt.config.limits.maxKeyBytes} bytes)`,
      );
    if (!isUtf8(b)) throw respError('ERR key is not valid UTF-8 (dcache routes keys as text)');
    return b.toString('utf8');
  }

  private auth(s: RespSession, user: Buffer | undefined, pass: Buffer): Out {
    const { resp, admin } = this.d.rt.config;
    const u = user?.toString('utf8');
    const p = pass.toString('utf8');
    if (u === 'admin' && admin.token !== '' && safeEqual(p, admin.token)) {
      s.authed = true;
      s.admin = true;
      return OK;
    }
    if (resp.password === '' && u === undefined)
      return respError(
        'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
      );
    if (
      (u === undefined || u === resp.username) &&
      resp.password !== '' &&
      safeEqual(p, resp.password)
    ) {
      s.authed = true;
      return OK;
    }
    this.d.rt.metrics.authFailures.inc({ outcome: 'unauthorized' });
    return respError('WRONGPASS invalid username-password pair or user is disabled.');
  }

  private hello(s: RespSession, args: Buffer[]): Out {
    let i = 1;
    if (args.length > 1) {
      const v = lower(args[1]);
      if (v !== '2') {
        if (v === '3')
          return respError('NOPROTO unsupported protocol version (dcache speaks RESP2)');
        return respError('NOPROTO unsupported protocol version');
      }
      i = 2;
    }
    for (; i < args.length; i++) {
      const opt = lower(args[i]);
      if (opt === 'auth' && i + 2 < args.length) {
        const r = this.auth(s, args[i + 1], args[i + 2] as Buffer);
        if (r instanceof Error) return r;
        i += 2;
      } else if (opt === 'setname' && i + 1 < args.length) {
        s.name = args[i + 1] as Buffer;
        i += 1;
      } else return syntax();
    }
    if (!s.authed)
      return respError(
        'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time',
      );
    return [
      bulk('server'),
      bulk('dcache'),
      bulk('version'),
      bulk(this.d.version),
      bulk('proto'),
      2,
      bulk('id'),
      s.id,
      bulk('mode'),
      bulk('standalone'),
      bulk('role'),
      bulk('master'),
      bulk('modules'),
      [],
    ];
  }

  /** Nodes that serve keys now (members not taken out of routing). */
  private serving(): string[] {
    const snap = this.d.rt.router.snapshot;
    return snap.ring.nodes.map((n) => n.id).filter((id) => !snap.excluded.has(id));
  }

  private async dbsize(): Promise<Out> {
    const sizes = await Promise.all(
      this.serving().map((n) => this.d.rt.exec.run(n, 'dbsize', (c) => c.send<number>(['DBSIZE']))),
    );
    return sizes.reduce((a, b) => a + b, 0);
  }

  private async info(): Promise<Out> {
    const rt = this.d.rt;
    const snap = rt.router.snapshot;
    let keys: number | string;
    try {
      keys = (await this.dbsize()) as number;
    } catch (e) {
      keys = `unknown (${(e as Error).message})`;
    }
    const nodes = snap.ring.nodes.map((n) => n.id);
    const lines = [
      '# Server',
      `dcache_version:${this.d.version}`,
      'redis_mode:standalone',
      `tcp_port:${this.d.port()}`,
      `uptime_in_seconds:${Math.floor((Date.now() - rt.state.startedAt) / 1000)}`,
      '',
      '# Clients',
      `connected_clients:${this.d.clients()}`,
      '',
      '# Keyspace',
      typeof keys === 'number' ? `db0:keys=${keys},expires=0,avg_ttl=0` : `# db0: ${keys}`,
      '',
      '# Proxy',
      `ring_version:${snap.version}`,
      `ring_checksum:${snap.checksum}`,
      `nodes:${nodes.length}`,
      `nodes_healthy:${nodes.filter((n) => !snap.excluded.has(n)).length}`,
      `nodes_ejected:${nodes.filter((n) => snap.excluded.has(n)).join(',')}`,
      `replication_factor:${rt.config.replication.factor}`,
      `resp_clients:${this.d.clients()}`,
      '',
    ];
    return bulk(lines.join('\r\n'));
  }

  private async scan(args: Buffer[]): Promise<Out> {
    if (args.length < 2) return arity('scan');
    let pattern = '*';
    let count = 10;
    for (let i = 2; i < args.length; i += 2) {
      const opt = lower(args[i]);
      const v = args[i + 1];
      if (v === undefined) return syntax();
      if (opt === 'match') pattern = v.toString('utf8');
      else if (opt === 'count') {
        count = Number(v.toString('latin1'));
        if (!Number.isInteger(count) || count < 1)
          return respError('ERR value is not an integer or out of range');
        count = Math.min(count, 1_000);
      } else return syntax();
    }
    const snap = this.d.rt.router.snapshot;
    const order = snap.ring.nodes.map((n) => n.id).sort();
    const from = decodeScanCursor((args[1] as Buffer).toString('latin1'), order);
    if (from instanceof Error) return from;
    let page: Awaited<ReturnType<typeof scanKeys>>;
    try {
      page = await scanKeys(this.d.rt.exec, order, snap.excluded, pattern, count, from);
    } catch (e) {
      if (e instanceof DcacheError && e.code === 'INVALID_CURSOR')
        return respError('ERR invalid cursor');
      throw e;
    }
    const next = page.cursor === null ? '0' : encodeScanCursor(decodeCursor(page.cursor), order);
    return [bulk(next), page.keys.map(bulk)];
  }

  private async flush(s: RespSession, name: string, args: Buffer[]): Promise<Out> {
    if (args.length > 2) return syntax();
    if (args.length === 2 && !['async', 'sync'].includes(lower(args[1]))) return syntax();
    const admin = this.d.rt.config.admin;
    const allowed = s.admin || (admin.token === '' && (!admin.protectedMode || s.local));
    if (!allowed)
      return respError(
        admin.token !== ''
          ? `NOPERM ${name.toUpperCase()} needs AUTH admin <DC_ADMIN_TOKEN>`
          : `NOPERM ${name.toUpperCase()} answers clients on this host only (protected mode); set DC_ADMIN_TOKEN and AUTH admin <token>`,
      );
    const ids = [...this.d.rt.holder.current.members.keys()];
    if (ids.length === 0) throw new DcacheError('NO_NODES');
    const res = await Promise.allSettled(
      ids.map((id) => this.d.rt.exec.run(id, 'flushdb', (c) => c.flushdb('ASYNC'))),
    );
    const failed = ids.filter((_, i) => res[i]?.status === 'rejected');
    this.d.rt.log.warn(
      { flushed: ids.length - failed.length, failed: failed.length, via: 'resp' },
      'cache flushed',
    );
    if (failed.length > 0)
      return respError(
        `ERR ${failed.length} of ${ids.length} nodes could not be flushed: ${failed.join(', ')}`,
      );
    return OK;
  }

  private client(s: RespSession, args: Buffer[]): Out {
    const sub = lower(args[1]);
    switch (sub) {
      case 'setname': {
        if (args.length !== 3) return arity('client|setname');
        const n = args[2] as Buffer;
        if (n.some((b) => b <= 32 || b > 126))
          return respError(
            'ERR Client names cannot contain spaces, newlines or special characters.',
          );
        s.name = n.length === 0 ? null : n;
        return OK;
      }
      case 'getname':
        return s.name;
      case 'id':
        return s.id;
      case 'info':
      case 'list':
        return bulk(
          `id=${s.id} addr=${s.socket.remoteAddress}:${s.socket.remotePort} name=${s.name?.toString('utf8') ?? ''} age=${Math.floor((Date.now() - s.connectedAt) / 1000)} db=0${sub === 'list' ? '\n' : ''}`,
        );
      case 'setinfo':
      case 'no-evict':
      case 'no-touch':
        return OK;
      default:
        return respError(
          `ERR unknown subcommand '${args[1]?.toString('utf8') ?? ''}'. Try CLIENT SETNAME, GETNAME, ID, INFO, LIST.`,
        );
    }
  }

  private command(args: Buffer[]): Out | Promise<Out> {
    const t = this.d.table();
    if (!t) return respError('ERR the command table is not loaded yet (no node answered COMMAND)');
    const sub = lower(args[1]);
    if (args.length === 1) return t.entries as Out;
    if (sub === 'count') return t.size;
    if (sub === 'info') return args.slice(2).map((a) => (t.get(lower(a))?.entry ?? null) as Out);
    if (sub === 'docs') return [];
    if (sub === 'list') return t.entries.map((e) => (Array.isArray(e) ? (e[0] as Out) : null));
    if (sub === 'getkeys') {
      const rest = args.slice(2);
      if (rest.length === 0) return arity('command|getkeys');
      return Promise.resolve(this.keysOf(lower(rest[0]), rest)).then((k) =>
        k instanceof Error ? k : k.map((i) => rest[i] as Buffer),
      );
    }
    return respError(`ERR unknown subcommand '${args[1]?.toString('utf8') ?? ''}'`);
  }

  /** A keyless command any serving node can answer (TIME). */
  private anyNode(op: RedisOp, args: Buffer[]): Promise<Out> {
    const n = this.serving()[0];
    if (n === undefined) return Promise.reject(new DcacheError('NO_NODES'));
    return this.send(n, op, args);
  }

  private mget(args: Buffer[]): Promise<Out> {
    const keys = args.slice(1).map((b) => this.key(b));
    const router = this.d.rt.router;
    // One owner, no warm-up window (so no tombstone) and at most one chunk: one MGET per node,
    // without the batch machinery's rounds, dedupe and per-key outcome.
    if (router.replicas === 1 && keys.length <= this.getLimits.chunkKeys && !router.previous())
      return this.mgetDirect(args, keys);
    return this.mgetBatch(keys);
  }

  private async mgetDirect(args: Buffer[], keys: string[]): Promise<Out> {
    const route = this.d.rt.router.route();
    const byNode = new Map<string, number[]>();
    for (let i = 0; i < keys.length; i++) {
      const n = route.primary(keys[i] as string);
      if (n === undefined) throw new DcacheError('NO_NODES');
      const list = byNode.get(n);
      if (list) list.push(i);
      else byNode.set(n, [i]);
    }
    const out = new Array<Out>(keys.length);
    const name = args[0] as Buffer;
    await Promise.all(
      [...byNode].map(([n, idx]) =>
        this.send(n, 'resp_read', [name, ...idx.map((i) => args[i + 1] as Buffer)]).then(
          (r) => {
            if (!Array.isArray(r)) {
              for (const i of idx)
                out[i] = r instanceof Error ? r : respError('ERR bad MGET reply');
              return;
            }
            for (let j = 0; j < idx.length; j++) out[idx[j] as number] = r[j] as Out;
          },
          (e: unknown) => {
            const code = (e as { code?: string }).code ?? 'NODE_UNAVAILABLE';
            const err = respError(`ERR node ${n} failed for this key (${code})`);
            for (const i of idx) out[i] = err;
          },
        ),
      ),
    );
    return out;
  }

  private async mgetBatch(keys: string[]): Promise<Out> {
    const res = await this.d.cache.batchGet(keys, this.getLimits);
    const at = new Map<string, number>();
    for (let i = 0; i < res.keys.length; i++) at.set(res.keys[i] as string, i);
    const route = this.d.rt.router.route();
    return keys.map((k) => {
      const code = res.failed[k];
      if (code !== undefined)
        return respError(`ERR node ${route.primary(k) ?? '(none)'} failed for this key (${code})`);
      return res.values[at.get(k) as number] ?? null;
    });
  }

  private async mset(args: Buffer[]): Promise<Out> {
    const items: { key: string; value: Buffer; ttlMs: number }[] = [];
    // Later pairs win, as in Redis: keep the last value of a repeated key.
    const seen = new Map<string, number>();
    for (let i = 1; i < args.length; i += 2) {
      const key = this.key(args[i] as Buffer);
      const it = { key, value: args[i + 1] as Buffer, ttlMs: 0 };
      const j = seen.get(key);
      if (j === undefined) {
        seen.set(key, items.length);
        items.push(it);
      } else items[j] = it;
    }
    const res = await this.d.cache.batchSet(items);
    if (res.failedCount > 0)
      return respError(
        `ERR ${res.failedCount} of ${items.length} keys not stored (${[...new Set(Object.values(res.failed))].join(', ')}); the others were`,
      );
    return OK;
  }

  private async del(args: Buffer[]): Promise<Out> {
    const keys = args.slice(1).map((b) => this.key(b));
    const res = await this.d.cache.batchDel(keys);
    if (res.failedCount > 0)
      return respError(
        `ERR ${res.failedCount} of ${res.unique} keys could not be deleted (${[...new Set(Object.values(res.failed))].join(', ')})`,
      );
    return res.count;
  }

  /** EXISTS / TOUCH: each key counted as often as it is named (Redis' rule). */
  private async count(name: string, args: Buffer[]): Promise<Out> {
    const keys = args.slice(1).map((b) => this.key(b));
    const router = this.d.rt.router;
    if (name === 'exists' && (router.replicas > 1 || router.previous())) {
      const found = await Promise.all(keys.map((k) => this.d.cache.exists(k)));
      return found.filter(Boolean).length;
    }
    const route = router.route();
    const byNode = new Map<string, Buffer[]>();
    for (let i = 0; i < keys.length; i++) {
      const n = route.primary(keys[i] as string);
      if (n === undefined) throw new DcacheError('NO_NODES');
      const list = byNode.get(n);
      if (list) list.push(args[i + 1] as Buffer);
      else byNode.set(n, [args[i + 1] as Buffer]);
    }
    const cmd = args[0] as Buffer;
    const counts = await Promise.all(
      [...byNode].map(([n, ks]) => this.send(n, 'resp_read', [cmd, ...ks])),
    );
    let sum = 0;
    for (const c of counts) {
      if (c instanceof Error) return c;
      sum += c as number;
    }
    return sum;
  }

  /** Positions of a command's keys: from the table, or asked of a node (movable keys). */
  private keysOf(name: string, args: Buffer[]): number[] | Error | Promise<number[] | Error> {
    const t = this.d.table();
    const spec = t?.get(name, args[1]);
    if (!spec) return unknown(args);
    if (!arityOk(spec, args.length)) return arity(name);
    if (!spec.flags.has('movablekeys')) return keyIndexes(spec, args.length);
    return this.anyNode('command', [Buffer.from('COMMAND'), Buffer.from('GETKEYS'), ...args]).then(
      (r) => {
        if (r instanceof Error) return r;
        if (!Array.isArray(r)) return [];
        // GETKEYS answers the keys themselves: map each back to its first unused position.
        const used = new Set<number>();
        const out: number[] = [];
        for (const k of r) {
          for (let i = 1; i < args.length; i++)
            if (!used.has(i) && Buffer.isBuffer(k) && k.equals(args[i] as Buffer)) {
              used.add(i);
              out.push(i);
              break;
            }
        }
        return out;
      },
    );
  }

  /**
   * Forward a command to the node that owns its key(s); writes to every owner (replication).
   *
   * Ordering: a client's commands reach each node in the order it sent them because every path
   * sends synchronously from dispatch, over the node's one binary-safe connection. A command with
   * movable keys needs a COMMAND GETKEYS round trip first: it holds the session's later commands
   * until it has been sent.
   */
  private forward(s: RespSession, name: string, args: Buffer[]): Out | Promise<Out> {
    const t = this.d.table();
    if (!t) return respError('ERR the command table is not loaded yet (no node answered COMMAND)');
    const spec = t.get(name, args[1]);
    if (!spec) return unknown(args);
    if (!arityOk(spec, args.length)) return arity(name);
    const refusal = refusalOf(spec, args);
    if (refusal)
      return respError(`ERR unsupported command '${name.toUpperCase()}' on dcache: ${refusal}`);
    const idx = this.keysOf(name, args);
    if (!(idx instanceof Promise)) return this.forwardTo(spec, name, args, idx);
    let sent!: () => void;
    s.hold(
      new Promise<void>((r) => {
        sent = r;
      }),
    );
    return idx.then(
      (k) => {
        try {
          return this.forwardTo(spec, name, args, k);
        } finally {
          sent();
        }
      },
      (e: unknown) => {
        sent();
        throw e;
      },
    );
  }

  private forwardTo(
    spec: CommandSpec,
    name: string,
    args: Buffer[],
    idx: number[] | Error,
  ): Out | Promise<Out> {
    if (idx instanceof Error) return idx;
    if (idx.length === 0)
      return respError(
        `ERR unsupported command '${name.toUpperCase()}' on dcache: it names no key to route it by`,
      );
    const route = this.d.rt.router.route();
    const keys = idx.map((i) => this.key(args[i] as Buffer));
    const owners = route.owners(keys[0] as string);
    const one = owners.join('\n');
    for (let i = 1; i < keys.length; i++)
      if (route.owners(keys[i] as string).join('\n') !== one)
        return respError(
          "CROSSSLOT Keys in request don't hash to the same node (put them under one hash tag, e.g. {user1}:a and {user1}:b)",
        );
    if (owners.length === 0) throw new DcacheError('NO_NODES');
    if (spec.flags.has('write')) return this.write(route, keys, owners, args);
    const first = this.send(owners[0] as string, 'resp_read', args);
    if (owners.length === 1) return first;
    // Replicas in turn when a node fails (not on an error reply: that is the answer).
    return first.catch(async (e: unknown) => {
      let last = e;
      for (let i = 1; i < owners.length; i++) {
        try {
          return await this.send(owners[i] as string, 'resp_read', args);
        } catch (e2) {
          last = e2;
        }
      }
      throw last;
    });
  }

  private write(route: Routing, keys: string[], owners: string[], args: Buffer[]): Promise<Out> {
    for (const k of keys) this.d.cache.noteWrite(route, k, owners);
    const primary = this.send(owners[0] as string, 'resp_write', args);
    for (let i = 1; i < owners.length; i++) {
      const n = owners[i] as string;
      this.send(n, 'resp_write', args).then(
        (r) => {
          if (r instanceof Error) for (const k of keys) this.d.cache.writeFailed(n, k, r);
        },
        (e: unknown) => {
          for (const k of keys) this.d.cache.writeFailed(n, k, e);
        },
      );
    }
    return primary;
  }

  /**
   * One command on `node` over its binary-safe connection. An error reply is the answer (passed
   * to the client as is), except those that say the node cannot serve: those fail the call and
   * count against the node's health.
   */
  private send(node: string, op: RedisOp, args: readonly Buffer[]): Promise<Out> {
    return this.d.rt.exec.run(
      node,
      op,
      (c) =>
        c.sendMany([args]).then((r) => {
          const [err, val] = r[0] as [Error | null, Reply];
          if (err && isUnhealthyReply(err)) throw err;
          return (err ?? val) as Out;
        }),
      { raw: true },
    );
  }
}

/** SET key value [EX s | PX ms]: the TTL in ms (0: none); undefined for any other form. */
function plainSetTtl(args: Buffer[]): number | undefined {
  if (args.length === 3) return 0;
  if (args.length !== 5) return undefined;
  const unit = lower(args[3]);
  const s = (args[4] as Buffer).toString('latin1');
  if (!/^[1-9][0-9]{0,14}$/.test(s)) return undefined;
  const n = Number(s);
  if (unit === 'px') return n;
  if (unit === 'ex') return n * 1000;
  return undefined;
}

/** Why a known command is refused, or undefined when it may be forwarded. */
function refusalOf(spec: CommandSpec, args: Buffer[]): string | undefined {
  const base = spec.name.split('|')[0] as string;
  const byName = REFUSED[base];
  if (byName) return byName;
  if ((base === 'xread' || base === 'xreadgroup') && args.some((a) => lower(a) === 'block'))
    return REFUSED_FLAGS.blocking;
  if (base === 'xread' || base === 'xreadgroup') return undefined;
  for (const f of ['admin', 'blocking', 'pubsub']) if (spec.flags.has(f)) return REFUSED_FLAGS[f];
  return undefined;
}

function unknown(args: Buffer[]): Error {
  const rest = args
    .slice(1, 4)
    .map((a) => `'${a.toString('utf8').slice(0, 64)}'`)
    .join(' ');
  return respError(
    `ERR unknown command '${args[0]?.toString('utf8').slice(0, 64) ?? ''}', with args beginning with: ${rest}`,
  );
}

/** Bits of a numeric SCAN cursor: node index + 1 (12), keys of the page already sent (10). */
const NODE_BITS = 12n;
const SKIP_BITS = 10n;

/**
 * A RESP SCAN cursor as a decimal integer (redis-cli and others parse it as one): the node's
 * index + 1 in id order, the keys of its page already sent and the node's own SCAN cursor, packed.
 * A node index refers to the ring when the cursor was made: a membership change in between may
 * repeat or skip keys, as a rehash can in Redis itself.
 */
export function encodeScanCursor(
  p: { node: string; cursor: string; skip: number },
  order: readonly string[],
): string {
  const i = BigInt(order.indexOf(p.node) + 1);
  const skip = BigInt(Math.min(p.skip, 2 ** Number(SKIP_BITS) - 1));
  return ((BigInt(p.cursor) << (NODE_BITS + SKIP_BITS)) | (skip << NODE_BITS) | i).toString();
}

/** The opaque listing cursor of a numeric SCAN cursor (undefined: from the start), or an error. */
export function decodeScanCursor(c: string, order: readonly string[]): string | undefined | Error {
  if (c === '0') return undefined;
  if (!/^[0-9]{1,20}$/.test(c)) return respError('ERR invalid cursor');
  const v = BigInt(c);
  const i = Number(v & ((1n << NODE_BITS) - 1n)) - 1;
  const skip = Number((v >> NODE_BITS) & ((1n << SKIP_BITS) - 1n));
  const cursor = (v >> (NODE_BITS + SKIP_BITS)).toString();
  const node = order[i];
  if (node === undefined) return respError('ERR invalid cursor');
  return encodeCursor({ node, cursor, skip });
}
