import { DcacheError } from './errors.js';
import type { Executor } from './upstream/executor.js';

/** Position of a listing across nodes: node id, its SCAN cursor, and keys of that page already sent. */
interface ScanPosition {
  node: string;
  cursor: string;
  skip: number;
}

/** Encode a listing position as an opaque URL-safe cursor. */
export function encodeCursor(p: ScanPosition): string {
  return Buffer.from(JSON.stringify([p.node, p.cursor, p.skip])).toString('base64url');
}

/** Decode a cursor from `encodeCursor`; throws INVALID_CURSOR. */
export function decodeCursor(c: string): ScanPosition {
  try {
    const v: unknown = JSON.parse(Buffer.from(c, 'base64url').toString('utf8'));
    if (
      Array.isArray(v) &&
      v.length === 3 &&
      typeof v[0] === 'string' &&
      typeof v[1] === 'string' &&
      /^\d+$/.test(v[1]) &&
      Number.isSafeInteger(v[2]) &&
      v[2] >= 0
    ) {
      return { node: v[0], cursor: v[1], skip: v[2] };
    }
  } catch {
    // fall through
  }
  throw new DcacheError('INVALID_CURSOR');
}

/** One page of keys across every node. */
export interface KeysPage {
  keys: string[];
  cursor: string | null;
  /** Nodes that could not be listed (ejected or failing). */
  skipped: string[];
}

/**
 * SCAN every node in id order with MATCH/COUNT until `limit` keys are collected; never KEYS.
 * A page cut short is resumed by re-running its SCAN cursor and skipping what was already sent.
 */
export async function scanKeys(
  exec: Executor,
  nodes: readonly string[],
  ejected: ReadonlySet<string>,
  pattern: string,
  limit: number,
  cursor: string | undefined,
): Promise<KeysPage> {
  const order = [...nodes].sort();
  let pos: ScanPosition = { node: order[0] ?? '', cursor: '0', skip: 0 };
  if (cursor) {
    pos = decodeCursor(cursor);
    if (!order.includes(pos.node)) {
      // The node left the ring: continue with the next id in order.
      const next = order.find((n) => n > pos.node);
      if (next === undefined) return { keys: [], cursor: null, skipped: [] };
      pos = { node: next, cursor: '0', skip: 0 };
    }
  }
  const keys: string[] = [];
  const skipped: string[] = [];
  let i = order.indexOf(pos.node);
  let scanCursor = pos.cursor;
  let skip = pos.skip;
  const count = String(Math.min(Math.max(limit, 10), 1_000));
  // Bounded: at most this many SCAN calls per request, then the caller continues with the cursor.
  let budget = 200;
  while (i >= 0 && i < order.length && budget-- > 0) {
    const node = order[i] as string;
    if (ejected.has(node)) {
      skipped.push(node);
      i++;
      scanCursor = '0';
      skip = 0;
      continue;
    }
    let page: [string, string[]];
    try {
      page = await exec.run(node, 'scan', (c) =>
        c.scan(scanCursor, 'MATCH', pattern, 'COUNT', count),
      );
    } catch {
      skipped.push(node);
      i++;
      scanCursor = '0';
      skip = 0;
      continue;
    }
    const [nextCursor, batch] = page;
    const room = limit - keys.length;
    const usable = batch.slice(skip);
    if (usable.length > room) {
      keys.push(...usable.slice(0, room));
      return {
        keys,
        cursor: encodeCursor({ node, cursor: scanCursor, skip: skip + room }),
        skipped,
      };
    }
    keys.push(...usable);
    skip = 0;
    if (nextCursor === '0') {
      i++;
      scanCursor = '0';
    } else {
      scanCursor = nextCursor;
    }
    if (keys.length >= limit) {
      const more = i < order.length;
      return {
        keys,
        cursor: more
          ? encodeCursor({ node: order[i] as string, cursor: scanCursor, skip: 0 })
          : null,
        skipped,
      };
    }
  }
  if (i >= 0 && i < order.length) {
    return {
      keys,
      cursor: encodeCursor({ node: order[i] as string, cursor: scanCursor, skip }),
      skipped,
    };
  }
  return { keys, cursor: null, skipped };
}
