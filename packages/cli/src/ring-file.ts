import {
  MAX_ID_LENGTH,
  MAX_WEIGHT,
  MIN_WEIGHT,
  nodeIdFor,
  parseAddress,
  RESERVED_IDS,
} from '@dcache/ring';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { CommandError, EXIT } from './errors.js';

/** Admin states a ring file may give a node. */
export const FILE_STATES = ['active', 'draining'] as const;

/** One node as a ring file declares it (defaults filled in). */
export interface DesiredNode {
  id: string;
  address: string;
  weight: number;
  state: (typeof FILE_STATES)[number];
  /** Line of the entry in the file (1-based). */
  line: number;
}

const TOP_KEYS = ['nodes'];
const NODE_KEYS = ['address', 'id', 'weight', 'state'];

/** A bad ring file: exit 2, code INVALID_RING_FILE, the message names the file, line and field. */
export function badFile(from: string, line: number | undefined, message: string): CommandError {
  return new CommandError(
    'INVALID_RING_FILE',
    `${from}${line ? `:${line}` : ''}: ${message}`,
    EXIT.USAGE,
  );
}

/**
 * Parse a ring file (YAML, or JSON, which is YAML too): `{nodes: [{address, id?, weight?,
 * state?}]}`. Every node of the ring is listed; a node the file leaves out is removed on apply.
 * Throws INVALID_RING_FILE naming the line and field of the first problem.
 */
export function parseRingFile(text: string, from: string): DesiredNode[] {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const lineOf = (n: Node | null | undefined): number | undefined =>
    n?.range ? lc.linePos(n.range[0]).line : undefined;
  const first = doc.errors[0];
  if (first) {
    const line = first.linePos?.[0]?.line ?? lc.linePos(first.pos[0]).line;
    throw badFile(from, line, `not valid YAML or JSON: ${first.message.split('\n')[0]}`);
  }
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null))
    throw badFile(from, undefined, 'the file is empty: expected a mapping with "nodes"');
  if (!isMap(root))
    throw badFile(from, lineOf(root), 'expected a mapping with "nodes" at the top level');
  for (const pair of root.items) {
    const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    if (!TOP_KEYS.includes(k))
      throw badFile(
        from,
        lineOf(pair.key as Node),
        `unknown field ${JSON.stringify(k)}; expected ${TOP_KEYS.join(', ')}`,
      );
  }
  const list = root.get('nodes', true) as Node | undefined;
  if (list === undefined)
    throw badFile(from, lineOf(root), '"nodes" is missing: list the nodes of the ring');
  if (!isSeq(list))
    throw badFile(from, lineOf(list), '"nodes" must be a list of {address, id?, weight?, state?}');
  if (list.items.length === 0)
    throw badFile(from, lineOf(list), '"nodes" is empty: a ring needs at least one active node');
  const out: DesiredNode[] = [];
  const byId = new Map<string, DesiredNode>();
  const byAddress = new Map<string, DesiredNode>();
  list.items.forEach((item, i) => {
    const where = `nodes[${i}]`;
    const node = item as Node;
    const line = lineOf(node);
    if (!isMap(node))
      throw badFile(from, line, `${where} must be a mapping {address, id?, weight?, state?}`);
    const fields: Record<string, { value: unknown; line: number | undefined }> = {};
    for (const pair of node.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const kLine = lineOf(pair.key as Node);
      if (!NODE_KEYS.includes(k))
        throw badFile(
          from,
          kLine,
          `${where}: unknown field ${JSON.stringify(k)}; expected ${NODE_KEYS.join(', ')}`,
        );
      const v = pair.value as Node | null;
      fields[k] = { value: isScalar(v) ? v.value : v ? v.toJSON() : null, line: kLine };
    }
    const address = fields.address;
    if (address === undefined)
      throw badFile(from, line, `${where}.address is missing: give the Redis node as host:port`);
    if (typeof address.value !== 'string')
      throw badFile(
        from,
        address.line,
        `${where}.address must be a string host:port, got ${JSON.stringify(address.value)}`,
      );
    let id: string;
    try {
      parseAddress(address.value);
      id = nodeIdFor(address.value);
    } catch (e) {
      throw badFile(from, address.line, `${where}.address: ${(e as Error).message}`);
    }
    if (fields.id !== undefined) {
      const v = fields.id.value;
      if (typeof v !== 'string' || v === '' || v.length > MAX_ID_LENGTH)
        throw badFile(
          from,
          fields.id.line,
          `${where}.id must be a non-empty string of at most ${MAX_ID_LENGTH} characters, got ${JSON.stringify(v)}`,
        );
      id = v;
    }
    if (RESERVED_IDS.includes(id))
      throw badFile(
        from,
        fields.id?.line ?? line,
        `${where}.id ${JSON.stringify(id)} is reserved (${RESERVED_IDS.join(', ')} are never node ids)`,
      );
    let weight = 1;
    if (fields.weight !== undefined) {
      const v = fields.weight.value;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < MIN_WEIGHT || v > MAX_WEIGHT)
        throw badFile(
          from,
          fields.weight.line,
          `${where}.weight must be an integer ${MIN_WEIGHT}..${MAX_WEIGHT}, got ${JSON.stringify(v)}`,
        );
      weight = v;
    }
    let state: DesiredNode['state'] = 'active';
    if (fields.state !== undefined) {
      const v = fields.state.value;
      if (!FILE_STATES.includes(v as DesiredNode['state']))
        throw badFile(
          from,
          fields.state.line,
          `${where}.state must be ${FILE_STATES.join(' or ')} (leave a node out of the file to remove it), got ${JSON.stringify(v)}`,
        );
      state = v as DesiredNode['state'];
    }
    const entry: DesiredNode = { id, address: address.value, weight, state, line: line ?? 0 };
    const sameId = byId.get(id);
    if (sameId)
      throw badFile(from, line, `${where}: node id ${id} is also declared on line ${sameId.line}`);
    const sameAddress = byAddress.get(entry.address);
    if (sameAddress)
      throw badFile(
        from,
        address.line,
        `${where}: address ${entry.address} is also declared on line ${sameAddress.line}`,
      );
    byId.set(id, entry);
    byAddress.set(entry.address, entry);
    out.push(entry);
  });
  if (!out.some((n) => n.state === 'active'))
    throw badFile(from, lineOf(list), 'no node is active: a ring needs at least one active node');
  return out;
}
