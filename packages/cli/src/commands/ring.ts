import { createInterface } from 'node:readline/promises';
import type { OwnerInfo, RingView } from '@dcache/client';
import type { Argv } from 'yargs';
import { type Ctx, command, type Session } from '../context.js';
import { CommandError, EXIT, UsageError } from '../errors.js';
import { isStdin, readInput } from '../input.js';
import { count, type Output, paint, percent, table, yesNo } from '../output.js';
import { type Plan, type PlanChange, type PlanNode, planChange } from '../plan.js';
import { type ApplyPlan, applySteps, describeStep, planApply } from '../ring-apply.js';
import { parseRingFile } from '../ring-file.js';

/** Print a ring as a header line and a node table. */
export function printRing(out: Output, r: RingView): void {
  const c = out.color;
  const active = r.nodes.filter((n) => n.state === 'active').length;
  out.line(
    `ring v${r.version}  checksum ${r.checksum.slice(0, 12)}  hash ${r.hash}` +
      `${r.hash_tag ? `  hash tag ${r.hash_tag}` : ''}  replication ${r.replication_factor}` +
      `  nodes ${active} active${r.nodes.length > active ? `, ${r.nodes.length - active} other` : ''}`,
  );
  out.line(
    table(
      [
        { header: 'node' },
        { header: 'address' },
        { header: 'weight', align: 'r' },
        { header: 'state' },
        { header: 'healthy' },
        { header: 'share', align: 'r' },
      ],
      r.nodes.map((n) => [
        n.id,
        n.address,
        String(n.weight),
        n.state === 'active' ? n.state : paint(c, 'yellow', n.state),
        n.healthy ? yesNo(c, true) : `${yesNo(c, false)} (${n.breaker})`,
        percent(n.share),
      ]),
    ),
  );
  if (r.peer_sync === 'on' || r.peers.length > 0) {
    out.line();
    out.line(
      `peers${r.node_id ? ` of ${r.node_id}` : ''}: ${r.peers.length === 0 ? 'none yet' : ''}`.trimEnd(),
    );
    if (r.peers.length > 0)
      out.line(
        table(
          [
            { header: 'peer' },
            { header: 'id' },
            { header: 'in sync' },
            { header: 'last success' },
            { header: 'failures', align: 'r' },
            { header: 'last error' },
          ],
          r.peers.map((p) => [
            p.url,
            p.id ?? '-',
            p.in_sync === undefined ? '-' : yesNo(c, p.in_sync),
            p.last_success_age_ms == null
              ? 'never'
              : `${(p.last_success_age_ms / 1000).toFixed(1)}s ago`,
            String(p.failures ?? 0),
            p.last_error ?? '',
          ]),
        ),
      );
  }
}

function printOwner(out: Output, o: OwnerInfo): void {
  out.line(
    table(
      [
        { header: 'key' },
        { header: 'node' },
        { header: 'home' },
        { header: 'replicas' },
        { header: 'hash', align: 'r' },
        { header: 'ring', align: 'r' },
      ],
      [
        [
          o.key,
          o.node ?? paint(out.color, 'red', 'none'),
          o.home,
          o.replicas.length ? o.replicas.join(',') : '-',
          String(o.hash),
          `v${o.ring_version}`,
        ],
      ],
    ),
  );
}

function weightCell(before: number | null, after: number | null): string {
  if (before === after) return String(before);
  return `${before ?? '-'} → ${after ?? '-'}`;
}

/** Print a plan: per-node shares and synthetic keys before/after, then the fractions that move. */
export function printPlan(out: Output, p: Plan): void {
  const c = out.color;
  const ch = p.change;
  const what =
    ch.op === 'add'
      ? `add ${ch.id} (weight ${ch.weight})`
      : `remove ${ch.id}${ch.in_ring ? '' : ` (${paint(c, 'yellow', 'not in the ring: nothing moves')})`}`;
  out.line(
    `plan: ${what} on ring v${p.ring_version}: ${p.nodes_before} → ${p.nodes_after} nodes, hash ${p.hash}${p.hash_tag ? `, hash tag ${p.hash_tag}` : ''}`,
  );
  out.line(`dry run: nothing was changed`);
  out.line();
  printShares(out, p.nodes, new Set([ch.id]));
  out.line();
  const idealWhy = ch.op === 'add' ? "the new node's share" : "the removed node's share";
  out.line(
    `synthetic keys: ${count(p.synthetic.moved)} of ${count(p.synthetic.keys)} move (${percent(p.synthetic.fraction)}); ideal ${percent(p.ideal_fraction)} (${idealWhy})`,
  );
  if (p.sample) {
    out.line(
      `sample of real keys: ${count(p.sample.moved)} of ${count(p.sample.keys)} move (${percent(p.sample.fraction)})`,
    );
  }
}

/** The table of a plan: weight, shares and synthetic keys per node before and after. */
function printShares(out: Output, nodes: readonly PlanNode[], bold: ReadonlySet<string>): void {
  const c = out.color;
  out.line(
    table(
      [
        { header: 'node' },
        { header: 'weight', align: 'r' },
        { header: 'share before', align: 'r' },
        { header: 'share after', align: 'r' },
        { header: 'keys before', align: 'r' },
        { header: 'keys after', align: 'r' },
        { header: 'moved out', align: 'r' },
        { header: 'moved in', align: 'r' },
      ],
      nodes.map((n) => [
        bold.has(n.id) ? paint(c, 'bold', n.id) : n.id,
        weightCell(n.weight_before, n.weight_after),
        percent(n.share_before),
        percent(n.share_after),
        count(n.keys_before),
        count(n.keys_after),
        count(n.moved_out),
        count(n.moved_in),
      ]),
    ),
  );
}

/** Print the plan of `ring apply`: the changes in order, then the same table as `ring plan`. */
export function printApplyPlan(out: Output, p: ApplyPlan): void {
  if (!p.changed) {
    out.line(
      `nothing to change: ring v${p.ring_version} already matches ${p.file} (${p.nodes_after} active nodes)`,
    );
    return;
  }
  out.line(
    `plan: apply ${p.file} to ring v${p.ring_version}: ${p.nodes_before} → ${p.nodes_after} active nodes, hash ${p.hash}${p.hash_tag ? `, hash tag ${p.hash_tag}` : ''}`,
  );
  out.line(`${p.steps.length} change${p.steps.length === 1 ? '' : 's'}, in this order:`);
  p.steps.forEach((st, i) => {
    out.line(`  ${i + 1}. ${describeStep(st)}`);
  });
  out.line();
  const touched = new Set(p.steps.map((st) => st.id));
  printShares(out, p.nodes, touched);
  out.line();
  out.line(
    `synthetic keys: ${count(p.synthetic.moved)} of ${count(p.synthetic.keys)} move (${percent(p.synthetic.fraction)}); ideal ${percent(p.ideal_fraction)} (the shares that change hands)`,
  );
  if (p.sample) {
    out.line(
      `sample of real keys: ${count(p.sample.moved)} of ${count(p.sample.keys)} move (${percent(p.sample.fraction)})`,
    );
  }
}

/** Ask on the terminal; true for y/yes. */
async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(question);
    return /^\s*y(es)?\s*$/i.test(answer);
  } finally {
    rl.close();
  }
}

async function runApply(
  ctx: Ctx,
  a: {
    file: string;
    yes: boolean;
    dryRun: boolean;
    keys?: number | undefined;
    sample?: number | undefined;
  },
): Promise<number> {
  const fromStdin = isStdin(a.file);
  const name = fromStdin ? 'stdin' : a.file;
  const interactive = !fromStdin && process.stdin.isTTY === true;
  const desired = parseRingFile(await readInput(a.file), name);
  const client = ctx.client();
  const view = await client.ring();
  const sample = a.sample ? await sampleKeys(ctx, a.sample) : undefined;
  const plan = planApply(view, desired, name, {
    syntheticKeys: a.keys ?? 100_000,
    ...(sample ? { sample } : {}),
  });
  const emit = (extra: Record<string, unknown>) => {
    if (ctx.out.json) ctx.out.emit({ ...plan, ...extra });
  };
  // With --json and no way to confirm, the refusal is the one document printed.
  const refuse = !plan.changed || a.dryRun || a.yes || interactive ? undefined : 'refuse';
  if (!ctx.out.json) printApplyPlan(ctx.out, plan);
  if (refuse)
    throw new UsageError(
      'refusing to apply without --yes: stdin is not a terminal to confirm on (nothing was changed; --dry-run only shows the plan)',
    );
  if (!plan.changed) {
    emit({ dry_run: a.dryRun, applied: [], ring_version_after: plan.ring_version });
    return 0;
  }
  if (a.dryRun) {
    emit({ dry_run: true, applied: [], ring_version_after: plan.ring_version });
    if (!ctx.out.json) ctx.out.line('dry run: nothing was changed');
    return 0;
  }
  if (!a.yes) {
    const n = plan.steps.length;
    if (!(await confirm(`apply ${n} change${n === 1 ? '' : 's'} to ${ctx.url}? [y/N] `)))
      throw new CommandError('CANCELLED', 'nothing was changed', EXIT.FAILED);
  }
  const result = await applySteps(client, desired, plan);
  emit({ dry_run: false, applied: result.applied, ring_version_after: result.ring_version });
  if (!ctx.out.json)
    ctx.out.line(
      `applied ${result.applied.length} change${result.applied.length === 1 ? '' : 's'}: ring is now v${result.ring_version}`,
    );
  return 0;
}

/** A yargs `coerce` for a positive integer option; `name` appears in the error. */
export function positiveInt(name: string) {
  return (v: unknown): number | undefined => {
    if (v === undefined) return undefined;
    const text = String(Array.isArray(v) ? v[v.length - 1] : v).trim();
    const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < 1)
      throw new UsageError(`${name} must be a positive integer, got ${JSON.stringify(text)}`);
    return n;
  };
}

async function sampleKeys(ctx: Ctx, n: number): Promise<string[]> {
  const seen = new Set<string>();
  for await (const page of ctx.client().scan({ limit: Math.min(n, 1_000) })) {
    for (const k of page.keys) {
      seen.add(k);
      if (seen.size >= n) return [...seen];
    }
  }
  return [...seen];
}

async function runPlan(
  ctx: Ctx,
  change: PlanChange,
  argv: { keys?: number | undefined; sample?: number | undefined; hashTag?: string | undefined },
): Promise<number> {
  const client = ctx.client();
  const view = await client.ring();
  const sample = argv.sample ? await sampleKeys(ctx, argv.sample) : undefined;
  const plan = planChange(view, change, {
    syntheticKeys: argv.keys ?? 100_000,
    ...(sample ? { sample } : {}),
    ...(argv.hashTag !== undefined ? { hashTag: argv.hashTag } : {}),
  });
  if (ctx.out.json) ctx.out.emit(plan);
  else printPlan(ctx.out, plan);
  return 0;
}

/** `dcache ring list|add|remove|drain|activate|weight|owner|apply|plan`. */
export function ringCommands(y: Argv, s: Session): Argv {
  return y.command('ring', 'Show and change the ring', (r) => {
    let ry = r as Argv;
    ry = command(ry, s, {
      command: 'list',
      describe: 'The ring: nodes, address, weight, state, health, key share',
      usage: 'dcache ring list',
      builder: (b) => b,
      handler: async (_a, ctx) => {
        const view = await ctx.client().ring();
        if (ctx.out.json) ctx.out.emit(view);
        else printRing(ctx.out, view);
        return 0;
      },
    });
    ry = command(ry, s, {
      command: 'add <address>',
      describe: 'Add a Redis node to the ring (admin token)',
      usage: 'dcache ring add <address> [--weight N] [--id NAME]',
      builder: (b) =>
        b
          .positional('address', { type: 'string', demandOption: true, describe: 'host:port' })
          .option('weight', {
            type: 'string',
            describe: 'Weight (integer ≥ 1)',
            coerce: positiveInt('--weight'),
          })
          .option('id', { type: 'string', describe: 'A name as node id (default host:port)' }),
      handler: async (a, ctx) => {
        const view = await ctx.client().addNode(a.address, {
          ...(a.weight === undefined ? {} : { weight: a.weight }),
          ...(a.id === undefined ? {} : { id: a.id }),
        });
        if (ctx.out.json) ctx.out.emit(view);
        else {
          const added = view.nodes.find((n) => (a.id ? n.id === a.id : n.address === a.address));
          ctx.out.line(
            `added ${added?.id ?? a.address} (weight ${added?.weight ?? a.weight ?? 1}): ring is now v${view.version}`,
          );
          printRing(ctx.out, view);
        }
        return 0;
      },
    });
    ry = command(ry, s, {
      command: 'remove <id>',
      describe: 'Remove a node from the ring (admin token)',
      usage: 'dcache ring remove <id>',
      builder: (b) =>
        b.positional('id', { type: 'string', demandOption: true, describe: 'node id' }),
      handler: async (a, ctx) => {
        const view = await ctx.client().removeNode(a.id);
        if (ctx.out.json) ctx.out.emit(view);
        else {
          ctx.out.line(`removed ${a.id}: ring is now v${view.version}`);
          printRing(ctx.out, view);
        }
        return 0;
      },
    });
    ry = command(ry, s, {
      command: 'drain <id>',
      describe: 'Take a node out of the ring, keeping it as a read fallback (admin token)',
      usage: 'dcache ring drain <id>',
      builder: (b) =>
        b.positional('id', { type: 'string', demandOption: true, describe: 'node id' }),
      handler: async (a, ctx) => {
        const view = await ctx.client().drainNode(a.id);
        if (ctx.out.json) ctx.out.emit(view);
        else {
          ctx.out.line(`draining ${a.id}: ring is now v${view.version}`);
          printRing(ctx.out, view);
        }
        return 0;
      },
    });
    ry = command(ry, s, {
      command: 'activate <id>',
      describe: 'Put a draining node back into the ring (admin token)',
      usage: 'dcache ring activate <id>',
      builder: (b) =>
        b.positional('id', { type: 'string', demandOption: true, describe: 'node id' }),
      handler: async (a, ctx) => {
        const view = await ctx.client().updateNode(a.id, { state: 'active' });
        if (ctx.out.json) ctx.out.emit(view);
        else {
          ctx.out.line(`activated ${a.id}: ring is now v${view.version}`);
          printRing(ctx.out, view);
        }
        return 0;
      },
    });
    ry = command(ry, s, {
      command: 'weight <id> <weight>',
      describe: "Change a node's weight (admin token)",
      usage: 'dcache ring weight <id> <weight>',
      builder: (b) =>
        b
          .positional('id', { type: 'string', demandOption: true, describe: 'node id' })
          .positional('weight', {
            type: 'string',
            demandOption: true,
            describe: 'integer ≥ 1',
            coerce: positiveInt('weight'),
          }),
      handler: async (a, ctx) => {
        const view = await ctx.client().updateNode(a.id, { weight: a.weight as number });
        if (ctx.out.json) ctx.out.emit(view);
        else {
          ctx.out.line(`${a.id} weight ${a.weight}: ring is now v${view.version}`);
          printRing(ctx.out, view);
        }
        return 0;
      },
    });
    ry = command(ry, s, {
      command: 'owner <key>',
      describe: 'Which node serves a key',
      usage: 'dcache ring owner <key>',
      builder: (b) => b.positional('key', { type: 'string', demandOption: true }),
      handler: async (a, ctx) => {
        const o = await ctx.client().owner(a.key);
        if (ctx.out.json) ctx.out.emit(o);
        else printOwner(ctx.out, o);
        return 0;
      },
    });
    ry = command(ry, s, {
      command: 'apply',
      describe:
        'Make the ring match a file (YAML or JSON): shows the plan, then changes the difference (admin token)',
      usage: 'dcache ring apply -f ring.yaml [--dry-run] [--yes]',
      builder: (b) =>
        b
          .option('file', {
            alias: 'f',
            type: 'string',
            demandOption: 'give the desired ring: -f ring.yaml (- for stdin)',
            describe: 'The desired ring: {nodes: [{address, id?, weight?, state?}]}; - for stdin',
          })
          .option('dry-run', {
            type: 'boolean',
            default: false,
            describe: 'Show the plan, change nothing',
          })
          .option('yes', {
            alias: 'y',
            type: 'boolean',
            default: false,
            describe: 'Apply without asking (needed when stdin is not a terminal)',
          })
          .option('keys', {
            type: 'string',
            describe: 'Synthetic keys to place',
            default: 100_000,
            coerce: positiveInt('--keys'),
          })
          .option('sample', {
            type: 'string',
            describe: 'Also place up to N real keys listed by SCAN',
            coerce: positiveInt('--sample'),
          }),
      handler: (a, ctx) =>
        runApply(ctx, {
          file: a.file,
          yes: a.yes,
          dryRun: a.dryRun,
          keys: a.keys,
          sample: a.sample,
        }),
    });
    ry = ry.command(
      'plan',
      'Dry run of a ring change, computed locally: shares and keys that would move',
      (p) => {
        const planOpts = <T>(b: Argv<T>) =>
          b
            .option('keys', {
              type: 'string',
              describe: 'Synthetic keys to place',
              default: 100_000,
              coerce: positiveInt('--keys'),
            })
            .option('sample', {
              type: 'string',
              describe: 'Also place up to N real keys listed by SCAN',
              coerce: positiveInt('--sample'),
            })
            .option('hash-tag', {
              type: 'string',
              describe: 'Hash tag to apply, e.g. {} (default: the ring’s)',
            });
        let py = p as Argv;
        py = command(py, s, {
          command: 'add <address>',
          describe: 'What adding a node would move',
          usage: 'dcache ring plan add <address> [--weight N] [--sample N]',
          builder: (b) =>
            planOpts(b)
              .positional('address', { type: 'string', demandOption: true, describe: 'host:port' })
              .option('weight', {
                type: 'string',
                describe: 'Weight (integer ≥ 1)',
                default: 1,
                coerce: positiveInt('--weight'),
              }),
          handler: (a, ctx) =>
            runPlan(ctx, { op: 'add', address: a.address, weight: a.weight ?? 1 }, a),
        });
        py = command(py, s, {
          command: 'remove <id>',
          describe: 'What removing (or draining) a node would move',
          usage: 'dcache ring plan remove <id> [--sample N]',
          builder: (b) =>
            planOpts(b).positional('id', {
              type: 'string',
              demandOption: true,
              describe: 'node id',
            }),
          handler: (a, ctx) => runPlan(ctx, { op: 'remove', id: a.id }, a),
        });
        return py.demandCommand(1, 'give a change: dcache ring plan add <address> | remove <id>');
      },
    );
    return ry.demandCommand(1, 'give a ring command (dcache ring --help lists them)');
  });
}
