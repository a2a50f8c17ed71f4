import { createServer, type Server, type Socket } from 'node:net';
import { CacheService } from '../cache-service.js';
import { HTTP_DURATION_BUCKETS, type LocalCounter, type LocalHistogram } from '../metrics.js';
import type { Runtime } from '../runtime.js';
import { version } from '../version.js';
import { CommandTable } from './command-table.js';
import { LOCAL_COMMANDS, RespCommands } from './resp-commands.js';
import { encode, type Out, respError } from './resp-reply.js';
import { RespSession, type SessionHost } from './resp-session.js';

/** How often the command table is asked for again while no node has answered (ms). */
const TABLE_RETRY_MS = 1_000;

/** A listening RESP front end. */
export interface RespServer {
  /** The port it listens on. */
  port: number;
  /** Stop accepting, close every client connection. */
  close(): Promise<void>;
}

/**
 * The RESP2 front end (issue 18): a TCP listener on resp.port sharing the runtime of the HTTP
 * side (routing view, health, membership, replication, warm-up, stale-read rules, metrics). The
 * command table is learned from the nodes (`COMMAND`) at start and again when the nodes change.
 */
export async function startRespServer(rt: Runtime): Promise<RespServer> {
  const cfg = rt.config;
  const cache = new CacheService<Buffer>({
    router: rt.router,
    exec: rt.exec,
    raw: true,
    journal: rt.journal,
    metrics: rt.metrics,
    log: rt.log,
  });
  let table: CommandTable | undefined;
  const sessions = new Set<RespSession>();
  let port = 0;
  const commands = new RespCommands({
    rt,
    cache,
    table: () => table,
    clients: () => sessions.size,
    version: version(),
    port: () => port,
  });
  const m = rt.metrics.resp;
  const known = new Set<string>(LOCAL_COMMANDS);
  const counters = new Map<string, LocalCounter>();
  const timers = new Map<string, LocalHistogram>();
  const labelOf = (args: Buffer[]): string => {
    const n = (args[0] as Buffer).toString('latin1').toLowerCase();
    return known.has(n) || table?.get(n) ? n : 'other';
  };
  const host: SessionHost = {
    dispatch: (s, args) => commands.dispatch(s, args),
    observe(args: Buffer[], out: Out, startedAt: number): void {
      const command = labelOf(args);
      const result = out instanceof Error ? 'error' : 'ok';
      const ck = `${command} ${result}`;
      let c = counters.get(ck);
      if (!c) {
        c = rt.metrics.localCounter(m.commands, { command, result });
        counters.set(ck, c);
      }
      c.inc();
      let t = timers.get(command);
      if (!t) {
        t = rt.metrics.localHistogram(m.duration, { command }, HTTP_DURATION_BUCKETS);
        timers.set(command, t);
      }
      t.observe((performance.now() - startedAt) / 1_000);
    },
    paused: () => m.backpressure.inc(),
    maxInflight: cfg.resp.maxInflight,
    maxBulk: Math.max(cfg.limits.maxValueBytes, cfg.limits.maxKeyBytes),
  };

  let refreshing = false;
  let retry: NodeJS.Timeout | undefined;
  const learn = async (): Promise<void> => {
    if (refreshing) return;
    refreshing = true;
    try {
      const snap = rt.router.snapshot;
      for (const n of snap.ring.nodes.map((x) => x.id).filter((id) => !snap.excluded.has(id))) {
        try {
          const reply = await rt.exec.run(n, 'command', (c) => c.send(['COMMAND']), { raw: true });
          table = new CommandTable(reply);
          rt.log.debug({ node: n, commands: table.size }, 'resp: command table learned');
          return;
        } catch (e) {
          rt.log.debug({ node: n, err: (e as Error).message }, 'resp: COMMAND failed');
        }
      }
    } finally {
      refreshing = false;
      if (!table && !closed) {
        clearTimeout(retry);
        retry = setTimeout(() => void learn(), TABLE_RETRY_MS);
        retry.unref();
      }
    }
  };
  let closed = false;
  const onChange = () => void learn();
  rt.holder.on('change', onChange);
  await learn();
  if (!table)
    rt.log.warn(
      { setting: 'DC_RESP_PORT' },
      'resp: no node answered COMMAND yet; keyed commands answer -ERR until one does',
    );

  const server: Server = createServer((socket: Socket) => {
    if (sessions.size >= cfg.resp.maxClients) {
      m.connectionsDropped.inc();
      const parts: Buffer[] = [];
      encode(respError('ERR max number of clients reached'), parts);
      socket.end(Buffer.concat(parts));
      return;
    }
    const s = new RespSession(socket, host, cfg.resp.password === '');
    sessions.add(s);
    m.connections.inc();
    socket.once('close', () => {
      sessions.delete(s);
      m.connections.dec();
    });
  });
  const bindHost = cfg.resp.host !== '' ? cfg.resp.host : cfg.server.host;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.resp.port, bindHost, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  port = typeof addr === 'object' && addr ? addr.port : cfg.resp.port;
  rt.log.info({ port, host: bindHost }, 'resp listening');
  return {
    port,
    async close() {
      closed = true;
      clearTimeout(retry);
      rt.holder.off('change', onChange);
      const done = new Promise<void>((r) => server.close(() => r()));
      for (const s of sessions) s.socket.end();
      const t = setTimeout(() => {
        for (const s of sessions) s.socket.destroy();
      }, 1_000);
      await done;
      clearTimeout(t);
    },
  };
}
