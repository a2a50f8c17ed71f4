/**
 * The peer exchange under /internal/v1: message shapes and their validation. Every message
 * says who sent it (node id and advertised URL), which peers it knows, and whether its
 * document is only a seed; digests and full documents travel as needed.
 */
import { MAX_ID_LENGTH, type MembershipDoc, validateDoc } from '@dcache/ring';
import type { FastifyBaseLogger } from 'fastify';
import { DcacheError } from '../errors.js';

/** Largest peer payload accepted or read (a full document of MAX_ENTRIES entries fits). */
export const MAX_PEER_PAYLOAD = 4 * 1024 * 1024;
/** Most peer URLs one message may carry. */
export const MAX_PEER_URLS = 256;
/** Longest peer URL accepted. */
export const MAX_URL_LENGTH = 2048;

/** How a proxy places keys (hash and hash tag), as peers compare it. */
export function placementOf(hash: string, hashTag: string): string {
  return hashTag ? `${hash} tag ${hashTag}` : hash;
}

/** Paths of the exchange. */
export const PATHS = {
  /** GET: the full document (start-up fetch). */
  membership: '/internal/v1/membership',
  /** POST: compare digests. */
  digest: '/internal/v1/membership/digest',
  /** POST: send a full document, get the merged one back when it differs. */
  sync: '/internal/v1/membership/sync',
  /** POST {node}: the keys this proxy changed while `node` was out (before it rejoins). */
  journal: '/internal/v1/journal',
} as const;

/** Longest key list one journal answer may carry (past it the peer answers `complete: false`). */
export const MAX_JOURNAL_KEYS = 100_000;

/** Who sent a message. */
export interface PeerIdentity {
  id: string;
  /** Advertised URL; '' when the sender has none. */
  url: string;
}

/** Version and checksum of a document. */
export interface Digest {
  version: number;
  checksum: string;
}

/** Fields of every message. */
export interface Envelope {
  from: PeerIdentity;
  /** Peers the sender exchanged with recently. */
  peers: string[];
  /** The sender's document is only its DC_CACHE_ADDRESSES seed. */
  seeded: boolean;
  /** Key hash and hash tag the sender places keys with (must match everywhere). */
  placement?: string;
}

/** A message with optional digest and document. */
export interface Exchange extends Envelope {
  digest?: Digest;
  doc?: MembershipDoc;
}

/** Canonical form of a peer URL (origin + path without trailing slash), or undefined if not http(s). */
export function normalizePeerUrl(raw: string): string | undefined {
  if (raw.length === 0 || raw.length > MAX_URL_LENGTH) return undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return undefined;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
  if (u.username || u.password) return undefined;
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
}

function bad(message: string): DcacheError {
  return new DcacheError('INVALID_MEMBERSHIP', message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Validate an untrusted message (request body or reply). `need` lists the parts that must be
 * present. Throws DcacheError INVALID_MEMBERSHIP naming the first problem.
 */
export function parseExchange(input: unknown, need: { digest?: boolean; doc?: boolean }): Exchange {
  if (!isObject(input)) throw bad('the peer message must be a JSON object');
  const from = input.from;
  if (!isObject(from)) throw bad('"from" must be an object {id, url}');
  const id = from.id;
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LENGTH) {
    throw bad(`"from.id" must be a string of 1..${MAX_ID_LENGTH} characters`);
  }
  const url = from.url ?? '';
  if (typeof url !== 'string' || (url !== '' && normalizePeerUrl(url) === undefined)) {
    throw bad('"from.url" must be an http(s) URL or empty');
  }
  const peers = input.peers ?? [];
  if (!Array.isArray(peers) || peers.length > MAX_PEER_URLS) {
    throw bad(`"peers" must be an array of at most ${MAX_PEER_URLS} URLs`);
  }
  const urls: string[] = [];
  for (const p of peers) {
    const n = typeof p === 'string' ? normalizePeerUrl(p) : undefined;
    if (n === undefined) throw bad('"peers" must hold http(s) URLs');
    urls.push(n);
  }
  const seeded = input.seeded ?? false;
  if (typeof seeded !== 'boolean') throw bad('"seeded" must be true or false');
  const placement = input.placement;
  if (placement !== undefined && (typeof placement !== 'string' || placement.length > 64)) {
    throw bad('"placement" must be a string of at most 64 characters');
  }
  const out: Exchange = {
    from: { id, url: url === '' ? '' : (normalizePeerUrl(url) ?? '') },
    peers: urls,
    seeded,
    ...(placement === undefined ? {} : { placement }),
  };
  if (input.digest !== undefined || need.digest) {
    const d = input.digest;
    if (
      !isObject(d) ||
      typeof d.version !== 'number' ||
      !Number.isSafeInteger(d.version) ||
      d.version < 0 ||
      typeof d.checksum !== 'string' ||
      !/^[0-9a-f]{64}$/.test(d.checksum)
    ) {
      throw bad('"digest" must be {version: integer >= 0, checksum: 64 hex characters}');
    }
    out.digest = { version: d.version, checksum: d.checksum };
  }
  if (input.doc !== undefined || need.doc) {
    try {
      out.doc = validateDoc(input.doc);
    } catch (e) {
      throw bad(`"doc": ${(e as Error).message}`);
    }
  }
  return out;
}

/** Validate the `node` of a journal request (from an untrusted peer). */
export function parseJournalRequest(input: unknown): string {
  if (!isObject(input)) throw bad('the journal request must be a JSON object');
  const node = input.node;
  if (typeof node !== 'string' || node.length === 0 || node.length > MAX_ID_LENGTH) {
    throw bad(`"node" must be a node id of 1..${MAX_ID_LENGTH} characters`);
  }
  return node;
}

/** Validate a journal answer: {node, complete, keys}; `keys` only when complete. */
export function parseJournal(input: unknown, node: string): { complete: boolean; keys: string[] } {
  if (!isObject(input) || input.node !== node) throw bad(`the journal answer is not about ${node}`);
  if (input.complete !== true) return { complete: false, keys: [] };
  const keys = input.keys;
  if (
    !Array.isArray(keys) ||
    keys.length > MAX_JOURNAL_KEYS ||
    keys.some((k) => typeof k !== 'string')
  ) {
    throw bad(`"keys" must be an array of at most ${MAX_JOURNAL_KEYS} strings`);
  }
  return { complete: true, keys: keys as string[] };
}

/**
 * Who sent an untrusted body, as far as it says (its `from`, cut short), with the client
 * address: what a refusal log names.
 */
export function senderOf(
  body: unknown,
  ip: string,
): { peer: string; peer_id?: string; ip: string } {
  const from = isObject(body) && isObject(body.from) ? body.from : undefined;
  const url = typeof from?.url === 'string' && from.url !== '' ? from.url.slice(0, 256) : undefined;
  const id = typeof from?.id === 'string' && from.id !== '' ? from.id.slice(0, 256) : undefined;
  return { peer: url ?? id ?? ip, ...(id === undefined ? {} : { peer_id: id }), ip };
}

/**
 * Logs refused peer documents at warn, naming the peer and the reason: the first refusal of a
 * peer (per error code), then at most one line per `every` ms with how many were left out, so
 * that a peer resending a bad document every round does not flood the log.
 */
export class RefusalLog {
  private readonly seen = new Map<string, { at: number; suppressed: number }>();
  private readonly log: FastifyBaseLogger;
  private readonly every: number;
  private readonly now: () => number;

  constructor(log: FastifyBaseLogger, opts: { every?: number; now?: () => number } = {}) {
    this.log = log;
    this.every = opts.every ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** Note a refusal of `who`'s message; logs unless one was logged for it recently. */
  note(who: { peer: string } & Record<string, unknown>, err: DcacheError, msg: string): void {
    const key = `${who.peer}\n${err.code}`;
    const t = this.now();
    const s = this.seen.get(key);
    if (s && t - s.at < this.every) {
      s.suppressed++;
      return;
    }
    if (!s && this.seen.size >= 1024) this.seen.clear();
    this.log.warn(
      {
        ...who,
        code: err.code,
        reason: err.message,
        ...(s?.suppressed ? { suppressed: s.suppressed } : {}),
      },
      msg,
    );
    this.seen.set(key, { at: t, suppressed: 0 });
  }
}
