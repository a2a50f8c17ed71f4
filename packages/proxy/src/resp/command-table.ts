import type { Reply } from '../upstream/resp/resp-parser.js';

/** What the nodes say of one command (`COMMAND` reply): arity, flags and where its keys are. */
export interface CommandSpec {
  /** Lower-case name; a subcommand is `container|sub` (e.g. `object|encoding`). */
  readonly name: string;
  /** Positive: exact argument count (name included); negative: at least -arity. */
  readonly arity: number;
  readonly flags: ReadonlySet<string>;
  /** First key's index (0: no key at a fixed position), last (negative: from the end), step. */
  readonly first: number;
  readonly last: number;
  readonly step: number;
  /** The node's own entry, answered as is by COMMAND / COMMAND INFO. */
  readonly entry: Reply;
}

const text = (r: Reply | undefined): string =>
  Buffer.isBuffer(r) ? r.toString('utf8') : typeof r === 'string' ? r : '';

/** The command table learned from a node's `COMMAND` reply (subcommands included). */
export class CommandTable {
  private readonly specs = new Map<string, CommandSpec>();
  /** The top-level entries, in the node's order. */
  readonly entries: readonly Reply[];

  constructor(reply: Reply) {
    if (!Array.isArray(reply) || reply.length === 0)
      throw new Error('COMMAND gave no command table');
    this.entries = reply;
    for (const e of reply) this.add(e);
  }

  private add(e: Reply): void {
    if (!Array.isArray(e) || e.length < 6) return;
    const flags = new Set<string>();
    const f = e[2];
    if (Array.isArray(f)) for (const x of f) flags.add(text(x).toLowerCase());
    const spec: CommandSpec = {
      name: text(e[0]).toLowerCase(),
      arity: Number(e[1]),
      flags,
      first: Number(e[3]),
      last: Number(e[4]),
      step: Number(e[5]),
      entry: e,
    };
    this.specs.set(spec.name, spec);
    const subs = e[9];
    if (Array.isArray(subs)) for (const s of subs) this.add(s);
  }

  /** Number of top-level commands. */
  get size(): number {
    return this.entries.length;
  }

  /** The spec of `name` (lower case), or of its subcommand when it has one for `sub`. */
  get(name: string, sub?: Buffer): CommandSpec | undefined {
    const top = this.specs.get(name);
    if (sub === undefined || top === undefined) return top;
    return this.specs.get(`${name}|${sub.toString('latin1').toLowerCase()}`) ?? top;
  }
}

/** True when `argc` arguments (name included) fit the command's arity. */
export function arityOk(spec: CommandSpec, argc: number): boolean {
  return spec.arity >= 0 ? argc === spec.arity : argc >= -spec.arity;
}

/** Indexes of the key arguments of a command with fixed key positions (none: []). */
export function keyIndexes(spec: CommandSpec, argc: number): number[] {
  if (spec.first <= 0 || spec.step <= 0) return [];
  const last = spec.last < 0 ? argc + spec.last : spec.last;
  const out: number[] = [];
  for (let i = spec.first; i <= last && i < argc; i += spec.step) out.push(i);
  return out;
}
