import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checksum, upsertEntry } from '@dcache/ring';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { seedDoc } from '../../src/membership/membership-holder.js';
import {
  readStateFile,
  StateFileError,
  StatePersister,
  serializeState,
  tempPathFor,
  writeFileAtomic,
} from '../../src/membership/state-file.js';

const log = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'dcache-state-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const doc = seedDoc(['10.0.0.1:6379', '10.0.0.2:6379']);

async function corruptError(text: string): Promise<string> {
  const path = join(dir, `c-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, text);
  try {
    await readStateFile(path);
  } catch (e) {
    expect(e).toBeInstanceOf(StateFileError);
    const msg = (e as Error).message;
    expect(msg).not.toContain('\n');
    expect(msg).toContain(path);
    return msg;
  }
  throw new Error('a corrupt file was accepted');
}

describe('state file', () => {
  it('round-trips the document and the seeded flag; a missing file is undefined', async () => {
    const path = join(dir, 'sub', 'dir', 'ring.json'); // parent dirs are created
    await writeFileAtomic(path, serializeState({ doc, seeded: true }, 'A'));
    const back = await readStateFile(path);
    expect(back?.seeded).toBe(true);
    expect(checksum(back!.doc)).toBe(checksum(doc));
    expect(await readStateFile(join(dir, 'absent.json'))).toBeUndefined();
    // Nothing but the file itself is left in the directory (the temp file was renamed).
    expect(readdirSync(join(dir, 'sub', 'dir'))).toEqual(['ring.json']);
  });

  it('refuses corrupt files with one line naming the file and the problem', async () => {
    const good = serializeState({ doc, seeded: false }, 'A');
    expect(await corruptError('')).toMatch(/is empty/);
    expect(await corruptError(good.slice(0, good.length / 2))).toMatch(/not JSON/);
    expect(await corruptError('[]')).toMatch(/not a JSON object/);
    expect(await corruptError('{"format":"other"}')).toMatch(/format/);
    const edited = good.replace('"weight": 1', '"weight": 2');
    expect(await corruptError(edited)).toMatch(/checksum does not match/);
    const badEntry = JSON.parse(good);
    badEntry.doc.entries['10.0.0.1:6379'].address = 'no-port';
    delete badEntry.checksum;
    expect(await corruptError(JSON.stringify(badEntry))).toMatch(/address/);
  });

  it('a hand-written file without checksum is accepted', async () => {
    const path = join(dir, 'hand.json');
    const obj = JSON.parse(serializeState({ doc, seeded: false }, 'A'));
    delete obj.checksum;
    delete obj.savedAt;
    writeFileSync(path, JSON.stringify(obj));
    expect(checksum((await readStateFile(path))!.doc)).toBe(checksum(doc));
  });

  it('an unreadable path is an error, not an empty ring', async () => {
    await expect(readStateFile(dir)).rejects.toBeInstanceOf(StateFileError); // a directory
  });

  it('a failed write leaves the previous file intact', async () => {
    const sub = join(dir, 'fail');
    const path = join(sub, 'ring.json');
    await writeFileAtomic(path, serializeState({ doc, seeded: false }, 'A'));
    const before = readFileSync(path, 'utf8');
    // The temp file cannot be created (a directory is in the way): the write fails before rename.
    mkdirSync(tempPathFor(path));
    await expect(writeFileAtomic(path, 'garbage')).rejects.toThrow(/EISDIR/);
    expect(readFileSync(path, 'utf8')).toBe(before);
    rmSync(tempPathFor(path), { recursive: true });
    // A temp file left by a crash between write and rename does not affect reading.
    writeFileSync(tempPathFor(path), 'half-written garbage');
    expect(checksum((await readStateFile(path))!.doc)).toBe(checksum(doc));
    await writeFileAtomic(path, serializeState({ doc, seeded: true }, 'A'));
    expect((await readStateFile(path))?.seeded).toBe(true);
    expect(readdirSync(sub)).toEqual(['ring.json']);
  });
});

describe('StatePersister', () => {
  it('coalesces saves during a write and always ends with the latest state', async () => {
    const path = join(dir, 'persist.json');
    let current = doc;
    const p = new StatePersister(path, () => ({ doc: current, seeded: false }), {
      writer: 'A',
      log,
    });
    const waits: Promise<boolean>[] = [];
    for (let i = 0; i < 20; i++) {
      current = upsertEntry(current, { id: `h:${i + 1}`, address: `h:${i + 1}` }, 'A', i);
      waits.push(p.save());
    }
    expect((await Promise.all(waits)).every(Boolean)).toBe(true);
    expect(p.writes).toBeLessThan(20); // coalesced
    expect(p.writes).toBeGreaterThanOrEqual(1);
    const back = await readStateFile(path);
    expect(checksum(back!.doc)).toBe(checksum(current));
    expect(await p.flushed()).toBe(true);
    await p.close();
  });

  it('saveOrThrow fails with a StateFileError when the path cannot be written', async () => {
    const blocker = join(dir, 'blocker');
    writeFileSync(blocker, 'x'); // a file where a directory is needed
    const p = new StatePersister(join(blocker, 'ring.json'), () => ({ doc, seeded: false }), {
      writer: 'A',
      log,
      retryMs: 60_000,
    });
    await expect(p.saveOrThrow()).rejects.toThrow(/cannot write state file/);
    expect(p.lastError).toBeDefined();
    await p.close();
  });
});
