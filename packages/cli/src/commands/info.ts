import type { Health, Stats } from '@dcache/client';
import type { Argv } from 'yargs';
import { command, type Session } from '../context.js';
import { EXIT } from '../errors.js';
import { bytes, count, type Output, paint, percent, table, uptime, yesNo } from '../output.js';

const num = (n: number | undefined) => (n === undefined ? '-' : count(n));

/** Print stats: one row per node, a total row, and the proxy's own figures. */
export function printStats(out: Output, st: Stats): void {
  const c = out.color;
  const rows = st.nodes.map((n) => [
    n.id,
    n.membership === 'active' ? n.membership : paint(c, 'yellow', n.membership),
    n.healthy ? yesNo(c, true) : `${yesNo(c, false)} (${n.state})`,
    num(n.keys),
    n.used_memory === undefined ? '-' : bytes(n.used_memory),
    num(n.hits),
    num(n.misses),
    num(n.ops_per_sec),
    num(n.connected_clients),
  ]);
  const t = st.total;
  rows.push([
    paint(c, 'bold', 'total'),
    `${t.nodes} nodes`,
    `${t.healthy_nodes}/${t.nodes}`,
    count(t.keys),
    bytes(t.used_memory),
    count(t.hits),
    count(t.misses),
    count(t.ops_per_sec),
    count(t.connected_clients),
  ]);
  out.line(
    table(
      [
        { header: 'node' },
        { header: 'membership' },
        { header: 'healthy' },
        { header: 'keys', align: 'r' },
        { header: 'memory', align: 'r' },
        { header: 'hits', align: 'r' },
        { header: 'misses', align: 'r' },
        { header: 'ops/s', align: 'r' },
        { header: 'clients', align: 'r' },
      ],
      rows,
    ),
  );
  for (const n of st.nodes)
    if (n.error) out.line(paint(c, 'red', `${n.id}: ${n.error.code}: ${n.error.message}`));
  const p = st.proxy;
  out.line();
  out.line(
    `proxy: ${count(p.requests)} requests, hit ratio ${p.hit_ratio === null ? '-' : percent(p.hit_ratio)} ` +
      `(${count(p.hits)} hits, ${count(p.misses)} misses), up ${uptime(p.uptime_seconds)}, ` +
      `ring v${p.ring_version} (${p.ring_checksum.slice(0, 12)}), replication ${p.replication_factor}`,
  );
}

/** Print health: overall status line, then one row per node. */
export function printHealth(out: Output, h: Health): void {
  const c = out.color;
  const colour = h.status === 'ok' ? 'green' : h.status === 'degraded' ? 'yellow' : 'red';
  out.line(
    `status: ${paint(c, colour, h.status)} (${h.ring.serving}/${h.ring.nodes} ring nodes serving, ring v${h.ring.version}, replication ${h.ring.replication_factor})`,
  );
  out.line(
    table(
      [
        { header: 'node' },
        { header: 'membership' },
        { header: 'breaker' },
        { header: 'healthy' },
        { header: 'connected' },
        { header: 'since' },
        { header: 'last error' },
      ],
      h.nodes.map((n) => [
        n.id,
        n.membership,
        n.state,
        yesNo(c, n.healthy),
        yesNo(c, n.connected),
        n.since,
        n.last_error ?? n.error_class ?? '',
      ]),
    ),
  );
}

/** `dcache stats` and `dcache health`. */
export function infoCommands(y: Argv, s: Session): Argv {
  let d = command(y, s, {
    command: 'stats',
    describe: 'Per-node and total figures: keys, memory, hits, misses, ops',
    usage: 'dcache stats',
    builder: (b) => b,
    handler: async (_a, ctx) => {
      const st = await ctx.client().stats();
      if (ctx.out.json) ctx.out.emit(st);
      else printStats(ctx.out, st);
      return EXIT.OK;
    },
  });
  d = command(d, s, {
    command: 'health',
    describe: 'Overall and per-node health (exit 1 when degraded or down)',
    usage: 'dcache health',
    builder: (b) => b,
    handler: async (_a, ctx) => {
      const h = await ctx.client().health();
      if (ctx.out.json) ctx.out.emit(h);
      else printHealth(ctx.out, h);
      return h.status === 'ok' ? EXIT.OK : EXIT.FAILED;
    },
  });
  return d;
}
