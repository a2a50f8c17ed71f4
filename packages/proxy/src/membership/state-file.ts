import { mkdir, open, readFile, rename, rm, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { checksum, docVersion, type MembershipDoc, validateDoc } from '@dcache/ring';
import type { Logger } from 'pino';

/** `format` field of every state file. */
export const STATE_FORMAT = 'dcache-membership/1';

/** What a state file holds: the document and whether it only came from DC_CACHE_ADDRESSES. */
export interface MembershipState {
  doc: MembershipDoc;
  /** True while the document is the seed list and nothing else (no admin change, no peer). */
  seeded: boolean;
}

/**
 * Why a state file was not loaded: `unreadable` (or unwritable), `corrupt` (damaged or
 * mis-edited: not JSON, another format, a checksum that does not match), or `refused` (intact,
 * as a proxy wrote it, but holding a document this version refuses: e.g. a version above the
 * cap or a reserved id, written by an older build).
 */
export type StateFileProblem = 'unreadable' | 'corrupt' | 'refused';

/** A state file that cannot be read or written; the message is one line that says what to do. */
export class StateFileError extends Error {
  readonly path: string;
  readonly problem: StateFileProblem;
  constructor(path: string, message: string, problem: StateFileProblem = 'unreadable') {
    super(message);
    this.name = 'StateFileError';
    this.path = path;
    this.problem = problem;
  }
}

function corrupt(path: string, why: string): StateFileError {
  return new StateFileError(
    path,
    `state file ${path} is corrupt: ${why}; fix it, restore a backup, or delete it to re-learn the ring from peers or DC_CACHE_ADDRESSES`,
    'corrupt',
  );
}

/** The checksum of a document that failed validation, if it can be computed at all. */
function rawChecksum(doc: unknown): string | undefined {
  try {
    return checksum(doc as MembershipDoc);
  } catch {
    return undefined;
  }
}

/** The file's text for a state: pretty JSON with format, version and checksum beside the document. */
export function serializeState(state: MembershipState, writer: string, now = Date.now()): string {
  return `${JSON.stringify(
    {
      format: STATE_FORMAT,
      savedAt: new Date(now).toISOString(),
      savedBy: writer,
      seeded: state.seeded,
      version: docVersion(state.doc),
      checksum: checksum(state.doc),
      doc: state.doc,
    },
    null,
    2,
  )}\n`;
}

/** Parse a state file's text; throws StateFileError naming what is wrong. */
export function parseState(path: string, text: string): MembershipState {
  if (text.trim() === '') throw corrupt(path, 'it is empty');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw corrupt(path, `not JSON (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw corrupt(path, 'not a JSON object');
  }
  const obj = raw as Record<string, unknown>;
  if (obj.format !== STATE_FORMAT) {
    throw corrupt(path, `"format" is ${JSON.stringify(obj.format)}, expected "${STATE_FORMAT}"`);
  }
  let doc: MembershipDoc;
  try {
    doc = validateDoc(obj.doc);
  } catch (e) {
    const why = (e as Error).message;
    // Written whole by a proxy (its checksum matches) yet refused now: not damage, but a
    // document an older build or a peer let in. The caller moves it aside instead of failing.
    if (typeof obj.checksum === 'string' && obj.checksum === rawChecksum(obj.doc)) {
      throw new StateFileError(
        path,
        `state file ${path} holds a membership document this version refuses: ${why}`,
        'refused',
      );
    }
    throw corrupt(path, why);
  }
  // The checksum is optional (a hand-written file may leave it out) but must match when present.
  if (obj.checksum !== undefined && obj.checksum !== checksum(doc)) {
    throw corrupt(path, 'its checksum does not match its entries (edited or truncated?)');
  }
  if (obj.seeded !== undefined && typeof obj.seeded !== 'boolean') {
    throw corrupt(path, '"seeded" must be true or false');
  }
  return { doc, seeded: obj.seeded === true };
}

/** Read the state file: undefined when it does not exist, StateFileError when unreadable or corrupt. */
export async function readStateFile(path: string): Promise<MembershipState | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new StateFileError(path, `cannot read state file ${path}: ${(e as Error).message}`);
  }
  return parseState(path, text);
}

/**
 * Move a refused state file aside to `<path>.rejected-<UTC time>` (same directory, nothing
 * deleted); returns the new path. A StateFileError when it cannot be moved.
 */
export async function moveAside(path: string, now = new Date()): Promise<string> {
  const to = `${path}.rejected-${now.toISOString().replace(/[:.]/g, '-')}`;
  try {
    await rename(path, to);
  } catch (e) {
    throw new StateFileError(
      path,
      `state file ${path} is refused and cannot be moved aside to ${to}: ${(e as Error).message}; move or delete it to re-learn the ring from peers or DC_CACHE_ADDRESSES`,
    );
  }
  return to;
}

/** The temp file `writeFileAtomic` writes before renaming it over `path`. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
}

/**
 * Create the temp file exclusively ('wx': never opens, follows or truncates what is already
 * there, such as a symlink planted at the predictable name). A leftover of a crash (same pid
 * after a restart, e.g. pid 1 in a container) is unlinked (the link itself, never its target)
 * and the exclusive create tried once more.
 */
async function openTemp(tmp: string): Promise<Awaited<ReturnType<typeof open>>> {
  try {
    return await open(tmp, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  await unlink(tmp);
  return open(tmp, 'wx', 0o600);
}

/**
 * Write `text` to `path` atomically: a temp file in the same directory, fsync, rename over
 * the target, fsync the directory. A crash leaves either the old file or the new one.
 * Calls for one path must not overlap (StatePersister serializes them).
 */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = tempPathFor(path);
  const fh = await openTemp(tmp);
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  // Make the rename itself durable; some platforms cannot open a directory, which is fine.
  try {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // best effort
  }
}

/**
 * Keeps the state file in step with the membership: `save()` after every change. Writes are
 * serialized and coalesced (a save requested during a write is done once, with the latest
 * state). A failed write is logged and retried after `retryMs`; serving goes on meanwhile.
 */
export class StatePersister {
  readonly path: string;
  private readonly get: () => MembershipState;
  private readonly writer: string;
  private readonly log: Logger;
  private readonly retryMs: number;
  private dirty = false;
  private loop: Promise<boolean> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The last write error, cleared by the next successful write. */
  lastError: Error | undefined;
  /** Successful writes so far. */
  writes = 0;

  constructor(
    path: string,
    get: () => MembershipState,
    opts: { writer: string; log: Logger; retryMs?: number },
  ) {
    this.path = path;
    this.get = get;
    this.writer = opts.writer;
    this.log = opts.log;
    this.retryMs = opts.retryMs ?? 2_000;
  }

  /** Write the current state soon; resolves true once a write that includes it succeeded. */
  save(): Promise<boolean> {
    this.dirty = true;
    this.loop ??= this.run().finally(() => {
      this.loop = undefined;
    });
    return this.loop;
  }

  /** Resolves when no write is pending: true if the last one succeeded. */
  flushed(): Promise<boolean> {
    return this.loop ?? Promise.resolve(this.lastError === undefined);
  }

  /** Write now and throw StateFileError on failure (used at start: an unwritable path is fatal). */
  async saveOrThrow(): Promise<void> {
    const ok = await this.save();
    if (!ok) {
      throw new StateFileError(
        this.path,
        `cannot write state file ${this.path}: ${this.lastError?.message ?? 'unknown error'}`,
      );
    }
  }

  /** Wait for a pending write, then stop retrying. */
  async close(): Promise<void> {
    if (this.dirty || this.loop) await this.save();
    this.closed = true;
    clearTimeout(this.retryTimer);
  }

  private async run(): Promise<boolean> {
    let ok = true;
    while (this.dirty) {
      this.dirty = false;
      const state = this.get();
      try {
        await writeFileAtomic(this.path, serializeState(state, this.writer));
        this.writes++;
        if (this.lastError) this.log.info({ path: this.path }, 'state file written again');
        this.lastError = undefined;
        ok = true;
      } catch (e) {
        ok = false;
        this.lastError = e as Error;
        this.log.error(
          { path: this.path, err: e },
          'cannot write the membership state file; will retry',
        );
        this.scheduleRetry();
        break;
      }
    }
    return ok;
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.lastError && !this.closed) void this.save();
    }, this.retryMs);
    this.retryTimer.unref();
  }
}
