/** A RESP2 reply: simple/bulk string, integer, nil, error (inside arrays) or array of replies. */
export type Reply = string | Buffer | number | null | ReplyError | Reply[];

/** An error reply from Redis (`-ERR …`); its name is what the error mapping keys on. */
export class ReplyError extends Error {
  override readonly name = 'ReplyError';
}

/** A byte stream that is not RESP: the connection cannot be trusted any more. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

const CR = 13;
const PLUS = 43;
const MINUS = 45;
const COLON = 58;
const DOLLAR = 36;
const STAR = 42;
/** Longest header line (type byte, length or simple string) accepted before the stream is refused. */
const MAX_LINE = 64 * 1024;
/** Largest bulk string Redis can send (proto-max-bulk-len's ceiling). */
const MAX_BULK = 512 * 1024 * 1024;

/** An array still being filled: the replies so far and how many are missing. */
interface Frame {
  items: Reply[];
  left: number;
}

/** Parser options. */
export interface RespParserOptions {
  /** Bulk strings as Buffers (binary-safe) instead of UTF-8 strings. */
  buffers?: boolean;
  /** Longest bulk string accepted (default 512 MiB, Redis' ceiling); longer is a ProtocolError. */
  maxBulk?: number;
}

/**
 * Incremental RESP2 parser: feed it the socket's chunks in order, it calls `onReply` once per
 * complete top-level reply (error replies included, as ReplyError values), in order.
 *
 * Invariants: an array's finished elements are kept across chunks (a reply split anywhere is never
 * parsed twice, whatever its size); a bulk string waiting for its bytes collects chunks and joins
 * them once, when all of them are there.
 */
export class RespParser {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** Chunks held back while a bulk string of known size is incomplete, and their total bytes. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** Bytes the buffer must hold (from `pos`) before parsing resumes; 0 when unknown. */
  private need = 0;
  private readonly stack: Frame[] = [];
  private readonly buffers: boolean;
  private readonly maxBulk: number;
  private readonly onReply: (r: Reply) => void;

  constructor(onReply: (r: Reply) => void, opts: RespParserOptions = {}) {
    this.onReply = onReply;
    this.buffers = opts.buffers === true;
    this.maxBulk = opts.maxBulk ?? MAX_BULK;
  }

  /** Parse what `chunk` completes; throws ProtocolError on bytes that are not RESP2. */
  feed(chunk: Buffer): void {
    if (this.need > 0) {
      this.held.push(chunk);
      this.heldBytes += chunk.length;
      if (this.heldBytes < this.need) return;
      this.buf = Buffer.concat(this.held, this.heldBytes);
      this.held = [];
      this.heldBytes = 0;
      this.need = 0;
      this.pos = 0;
    } else if (this.pos < this.buf.length) {
      this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk]);
      this.pos = 0;
    } else {
      this.buf = chunk;
      this.pos = 0;
    }
    this.run();
  }

  /** Drop any partial reply (the connection was closed). */
  reset(): void {
    this.buf = Buffer.alloc(0);
    this.pos = 0;
    this.held = [];
    this.heldBytes = 0;
    this.need = 0;
    this.stack.length = 0;
  }

  private run(): void {
    const buf = this.buf;
    const len = buf.length;
    while (this.pos < len) {
      const start = this.pos;
      const type = buf[start] as number;
      const eol = buf.indexOf(CR, start + 1);
      if (eol < 0 || eol + 1 >= len) {
        if (len - start > MAX_LINE) throw new ProtocolError('RESP header line too long');
        this.wait(start, 0);
        return;
      }
      let value: Reply;
      if (buf[eol + 1] !== 10) throw new ProtocolError('RESP line not ended by CRLF');
      switch (type) {
        case DOLLAR: {
          const n = this.int(buf, start + 1, eol);
          if (n < 0) {
            value = null;
            this.pos = eol + 2;
            break;
          }
          if (n > this.maxBulk) throw new ProtocolError(`RESP bulk length ${n} too large`);
          const from = eol + 2;
          const to = from + n;
          if (to + 2 > len) {
            this.wait(start, to + 2 - start);
            return;
          }
          value = this.buffers
            ? Buffer.from(buf.subarray(from, to))
            : buf.toString('utf8', from, to);
          this.pos = to + 2;
          break;
        }
        case PLUS:
          value = buf.toString('utf8', start + 1, eol);
          this.pos = eol + 2;
          break;
        case COLON:
          value = this.int(buf, start + 1, eol);
          this.pos = eol + 2;
          break;
        case MINUS:
          value = new ReplyError(buf.toString('utf8', start + 1, eol));
          this.pos = eol + 2;
          break;
        case STAR: {
          const n = this.int(buf, start + 1, eol);
          this.pos = eol + 2;
          if (n < 0) value = null;
          else if (n === 0) value = [];
          else {
            this.stack.push({ items: [], left: n });
            continue;
          }
          break;
        }
        default:
          throw new ProtocolError(`unexpected RESP type byte 0x${type.toString(16)}`);
      }
      this.emit(value);
    }
    // Everything consumed: let the next chunk be used as is, without a copy.
    this.buf = Buffer.alloc(0);
    this.pos = 0;
  }

  /** Hand a finished value to the array being filled, or to the caller when at top level. */
  private emit(value: Reply): void {
    let v = value;
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (!top) {
        this.onReply(v);
        return;
      }
      top.items.push(v);
      if (--top.left > 0) return;
      this.stack.pop();
      v = top.items;
    }
  }

  /** Stop at `start` until more bytes come; `total` (when known) is how many are needed from it. */
  private wait(start: number, total: number): void {
    this.pos = start;
    if (total > 0 && total > this.buf.length - start) {
      this.held = [this.buf.subarray(start)];
      this.heldBytes = this.buf.length - start;
      this.need = total;
      this.buf = Buffer.alloc(0);
      this.pos = 0;
    }
  }

  /** A decimal integer between `from` and `to` (a CR); ProtocolError when it is not one. */
  private int(buf: Buffer, from: number, to: number): number {
    let i = from;
    let neg = false;
    if (buf[i] === MINUS) {
      neg = true;
      i++;
    }
    if (i >= to) throw new ProtocolError('RESP integer is empty');
    let n = 0;
    for (; i < to; i++) {
      const d = (buf[i] as number) - 48;
      if (d < 0 || d > 9) throw new ProtocolError('RESP integer has a non-digit');
      n = n * 10 + d;
    }
    return neg ? -n : n;
  }
}
