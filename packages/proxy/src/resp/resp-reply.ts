import { type Reply, ReplyError } from '../upstream/resp/resp-parser.js';

/**
 * A reply the RESP front end writes: a simple string (string), a bulk string (Buffer), an integer,
 * nil (null), an error (Error; its message is the error line, e.g. `WRONGTYPE …`) or an array.
 */
export type Out = Reply | Error | readonly Out[];

const CRLF = Buffer.from('\r\n');
const NIL = Buffer.from('$-1\r\n');
const OK = Buffer.from('+OK\r\n');

/** An error reply `-<message>`; the message starts with its kind (ERR, NOAUTH, CROSSSLOT…). */
export function respError(message: string): ReplyError {
  return new ReplyError(message);
}

/** Bulk string of UTF-8 text. */
export function bulk(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

/** Append the RESP2 encoding of `r` to `parts`. */
export function encode(r: Out, parts: Buffer[]): void {
  if (r === null || r === undefined) {
    parts.push(NIL);
  } else if (Buffer.isBuffer(r)) {
    parts.push(Buffer.from(`$${r.length}\r\n`, 'latin1'), r, CRLF);
  } else if (typeof r === 'string') {
    parts.push(r === 'OK' ? OK : Buffer.from(`+${oneLine(r)}\r\n`, 'utf8'));
  } else if (typeof r === 'number') {
    parts.push(Buffer.from(`:${r}\r\n`, 'latin1'));
  } else if (r instanceof Error) {
    parts.push(Buffer.from(`-${oneLine(r.message)}\r\n`, 'utf8'));
  } else {
    parts.push(Buffer.from(`*${r.length}\r\n`, 'latin1'));
    for (const x of r) encode(x, parts);
  }
}

/** Status and error lines cannot hold CR or LF. */
function oneLine(s: string): string {
  return /[\r\n]/.test(s) ? s.replace(/[\r\n]+/g, ' ') : s;
}
