import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ProtocolError,
  type Reply,
  ReplyError,
  RespParser,
} from '../../src/upstream/resp/resp-parser.js';

/** The RESP2 bytes of a reply, as a server writes them (the reference encoder of this test). */
function encode(r: Reply): Buffer {
  if (r === null) return Buffer.from('$-1\r\n');
  if (typeof r === 'number') return Buffer.from(`:${r}\r\n`);
  if (r instanceof ReplyError) return Buffer.from(`-${r.message}\r\n`);
  if (Array.isArray(r)) return Buffer.concat([Buffer.from(`*${r.length}\r\n`), ...r.map(encode)]);
  const b = Buffer.isBuffer(r) ? r : Buffer.from(r);
  return Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')]);
}

/** Replies as the parser returns them: bulk strings as strings, errors compared by message. */
const norm = (r: Reply): unknown =>
  r instanceof ReplyError
    ? { error: r.message }
    : Array.isArray(r)
      ? r.map(norm)
      : Buffer.isBuffer(r)
        ? r.toString('utf8')
        : r;

const line = fc.string({ maxLength: 20 }).map((s) => s.replace(/[\r\n]/g, '_'));
const reply: fc.Arbitrary<Reply> = fc.letrec<{ r: Reply }>((tie) => ({
  r: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
    fc.string({ maxLength: 40 }),
    // Binary-safe bulk strings: CR, LF and zero bytes inside.
    fc.constantFrom('a\r\nb', '\0\0', '\r', '\n', 'é€😀', ''),
    line.map((m) => new ReplyError(`ERR ${m}`)),
    fc.array(tie('r'), { maxLength: 5 }),
  ) as fc.Arbitrary<Reply>,
})).r;

/** Feed `bytes` cut at the given offsets; the replies it produced. */
function parse(bytes: Buffer, cuts: number[]): Reply[] {
  const out: Reply[] = [];
  const p = new RespParser((r) => out.push(r));
  let at = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    p.feed(bytes.subarray(at, c));
    at = c;
  }
  p.feed(bytes.subarray(at));
  return out;
}

describe('RespParser', () => {
  it('parses any sequence of replies split at any byte boundaries, in order', () => {
    fc.assert(
      fc.property(
        fc.array(reply, { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (replies, raw) => {
          const bytes = Buffer.concat(replies.map(encode));
          const cuts = raw.map((c) => c % (bytes.length + 1));
          expect(parse(bytes, cuts).map(norm)).toEqual(replies.map(norm));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('gives the same replies for a split at every single byte boundary', () => {
    const replies: Reply[] = [
      'OK',
      null,
      42,
      -7,
      new ReplyError('WRONGTYPE Operation against a key holding the wrong kind of value'),
      ['a', null, ['x\r\ny', 3, []], new ReplyError('ERR inner')],
      'v'.repeat(300),
      [],
    ];
    const bytes = Buffer.concat(replies.map(encode));
    const want = replies.map(norm);
    for (let i = 0; i <= bytes.length; i++) expect(parse(bytes, [i]).map(norm)).toEqual(want);
    // One byte at a time.
    expect(
      parse(
        bytes,
        Array.from({ length: bytes.length }, (_, i) => i),
      ).map(norm),
    ).toEqual(want);
  });

  it('simple strings, nil arrays and empty bulk strings', () => {
    expect(parse(Buffer.from('+PONG\r\n*-1\r\n$0\r\n\r\n'), [])).toEqual(['PONG', null, '']);
  });

  it('a bulk string of 2 MiB in 64 KiB chunks is joined once and parsed exactly', () => {
    const big = Buffer.alloc(2 * 1024 * 1024, 'x');
    big[12345] = 13;
    big[12346] = 10;
    const bytes = encode([big, 'after']);
    const cuts: number[] = [];
    for (let c = 65_536; c < bytes.length; c += 65_536) cuts.push(c);
    const [r] = parse(bytes, cuts) as [Reply[]];
    expect(Buffer.from(r[0] as string).equals(big)).toBe(true);
    expect(r[1]).toBe('after');
  });

  it('returns Buffers when asked (binary values stay byte-exact)', () => {
    const out: Reply[] = [];
    const p = new RespParser((r) => out.push(r), { buffers: true });
    const bin = Buffer.from([0, 255, 13, 10, 128]);
    p.feed(encode(bin));
    expect(Buffer.isBuffer(out[0])).toBe(true);
    expect((out[0] as Buffer).equals(bin)).toBe(true);
  });

  it.each([
    ['an unknown type byte', '?x\r\n'],
    ['a length that is not a number', '$1x\r\nabc\r\n'],
    ['a line ended by CR alone', '+OK\rX'],
    ['an empty integer', ':\r\n'],
  ])('refuses %s with a ProtocolError', (_, text) => {
    expect(() => parse(Buffer.from(text), [])).toThrow(ProtocolError);
  });

  it('refuses a header line that never ends', () => {
    const p = new RespParser(() => {});
    expect(() => p.feed(Buffer.from(`+${'a'.repeat(70_000)}`))).toThrow(/too long/);
  });
});
