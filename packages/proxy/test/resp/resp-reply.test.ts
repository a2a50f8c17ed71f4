import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { arityOk, CommandTable, keyIndexes } from '../../src/resp/command-table.js';
import { encode, type Out } from '../../src/resp/resp-reply.js';
import { type Reply, ReplyError, RespParser } from '../../src/upstream/resp/resp-parser.js';

/** Replies as the front end writes them (simple strings without CR/LF). */
const reply: fc.Arbitrary<Out> = fc.letrec<{ r: Out }>((tie) => ({
  r: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }),
    fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
    fc.string({ maxLength: 20 }).filter((s) => !/[\r\n]/.test(s)),
    fc.string({ maxLength: 20 }).map((s) => new ReplyError(`ERR ${s.replace(/[\r\n]/g, ' ')}`)),
    fc.array(tie('r'), { maxLength: 5 }),
  ),
})).r;

function parseAll(bytes: Buffer): Reply[] {
  const got: Reply[] = [];
  const p = new RespParser((r) => got.push(r), { buffers: true });
  // One byte at a time: the encoding must be complete and self-delimiting.
  for (let i = 0; i < bytes.length; i++) p.feed(bytes.subarray(i, i + 1));
  return got;
}

const norm = (r: unknown): unknown =>
  r instanceof Error
    ? { error: r.message }
    : Array.isArray(r)
      ? r.map(norm)
      : Buffer.isBuffer(r)
        ? { bulk: r.toString('hex') }
        : r;

describe('RESP reply encoding', () => {
  it('round-trips through the parser: every reply type, nested, binary bulks', () => {
    fc.assert(
      fc.property(fc.array(reply, { minLength: 1, maxLength: 4 }), (rs) => {
        const parts: Buffer[] = [];
        for (const r of rs) encode(r, parts);
        expect(parseAll(Buffer.concat(parts)).map(norm)).toEqual(rs.map(norm));
      }),
      { numRuns: 300 },
    );
  });

  it('keeps an error or status line on one line', () => {
    const parts: Buffer[] = [];
    encode(new ReplyError('ERR a\r\nb'), parts);
    encode('x\ny', parts);
    expect(Buffer.concat(parts).toString()).toBe('-ERR a b\r\n+x y\r\n');
  });
});

describe('command table', () => {
  const entry = (name: string, arity: number, flags: string[], f: number, l: number, s: number) => [
    Buffer.from(name),
    arity,
    flags,
    f,
    l,
    s,
  ];
  const t = new CommandTable([
    entry('get', 2, ['readonly'], 1, 1, 1),
    entry('mset', -3, ['write'], 1, -1, 2),
    entry('ping', -1, [], 0, 0, 0),
    [...entry('object', -2, [], 0, 0, 0), [], [], [], [entry('object|encoding', 3, [], 2, 2, 1)]],
  ]);

  it('finds key positions from first, last and step (negative last counts from the end)', () => {
    const mset = t.get('mset');
    expect(mset && keyIndexes(mset, 7)).toEqual([1, 3, 5]);
    const get = t.get('get');
    expect(get && keyIndexes(get, 2)).toEqual([1]);
    const ping = t.get('ping');
    expect(ping && keyIndexes(ping, 1)).toEqual([]);
  });

  it('checks arity: exact when positive, a minimum when negative', () => {
    const get = t.get('get');
    const mset = t.get('mset');
    if (!get || !mset) throw new Error('missing');
    expect([arityOk(get, 2), arityOk(get, 3)]).toEqual([true, false]);
    expect([arityOk(mset, 2), arityOk(mset, 3), arityOk(mset, 9)]).toEqual([false, true, true]);
  });

  it('resolves subcommands of container commands', () => {
    expect(t.get('object', Buffer.from('ENCODING'))?.first).toBe(2);
    expect(t.get('object', Buffer.from('nosuch'))?.name).toBe('object');
    expect(t.size).toBe(4);
  });

  it('refuses a reply that is not a command table', () => {
    expect(() => new CommandTable(null)).toThrow(/no command table/);
  });
});
