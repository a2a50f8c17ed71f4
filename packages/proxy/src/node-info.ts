import { DcacheError } from './errors.js';
import type { Executor } from './upstream/executor.js';
import { errorClass } from './upstream/node-client.js';

/** Figures of one node from INFO keyspace/stats/memory. */
export interface NodeFigures {
  keys: number;
  expires: number;
  used_memory: number;
  hits: number;
  misses: number;
  ops: number;
  ops_per_sec: number;
  connected_clients: number;
}

/** Parse the INFO text of a node for database `db`. */
export function parseInfo(text: string, db: number): NodeFigures {
  const kv = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1));
  }
  const num = (k: string) => Number(kv.get(k) ?? 0) || 0;
  const dbLine = kv.get(`db${db}`) ?? '';
  const dbField = (f: string) => Number(new RegExp(`${f}=(\\d+)`).exec(dbLine)?.[1] ?? 0);
  return {
    keys: dbField('keys'),
    expires: dbField('expires'),
    used_memory: num('used_memory'),
    hits: num('keyspace_hits'),
    misses: num('keyspace_misses'),
    ops: num('total_commands_processed'),
    ops_per_sec: num('instantaneous_ops_per_sec'),
    connected_clients: num('connected_clients'),
  };
}

/**
 * INFO of one node (keyspace, stats, memory, clients) parsed. A failure keeps its code but says
 * only the error's class: /api/v1/cache/stats is public, and the detail (addresses, ports, the
 * node's own words) would make it a port scanner; admins read it in /health.
 */
export async function nodeFigures(exec: Executor, node: string, db: number): Promise<NodeFigures> {
  let text: string;
  try {
    text = await exec.run(node, 'info', async (c) => {
      const [ks, st, mem, cl] = await Promise.all([
        c.info('keyspace'),
        c.info('stats'),
        c.info('memory'),
        c.info('clients'),
      ]);
      return `${ks}\r\n${st}\r\n${mem}\r\n${cl}`;
    });
  } catch (e) {
    const code = e instanceof DcacheError ? e.code : 'NODE_ERROR';
    throw new DcacheError(
      code,
      `node ${node}: ${errorClass((e as Error).message ?? String(e))} (detail: GET /health with the admin token)`,
      { node },
    );
  }
  return parseInfo(text, db);
}
