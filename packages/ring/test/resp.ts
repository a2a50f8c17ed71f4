/** Minimal RESP2 client and request parser for the nutcracker differential test. */
import { connect, type Socket } from 'node:net';

export type Reply = string | number | null | Error | Reply[];

export function encode(args: readonly string[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.from(a, 'utf8');
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Parse one RESP value at `pos`; returns [value, next] or undefined when incomplete. */
export function parse(buf: Buffer, pos: number): [Reply, number] | undefined {
  if (pos >= buf.length) return undefined;
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[pos]!);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return [line, next];
    case '-':
      return [new Error(line), next];
    case ':':
      return [Number(line), next];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return undefined;
      return [buf.toString('utf8', next, next + n), next + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const out: Reply[] = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, p);
        if (!r) return undefined;
        out.push(r[0]);
        p = r[1];
      }
      return [out, p];
    }
    default:
      throw new Error(`bad RESP type ${JSON.stringify(type)}`);
  }
}

export class RespClient {
  private buf: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void }[] = [];
  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      let pos = 0;
      for (;;) {
        const r = parse(this.buf, pos);
        if (!r) break;
        pos = r[1];
        this.waiting.shift()?.resolve(r[0]);
      }
      this.buf = this.buf.subarray(pos);
    });
    const fail = (e: Error) => {
      for (const w of this.waiting.splice(0)) w.reject(e);
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('connection closed')));
  }

  static connect(host: string, port: number): Promise<RespClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port }, () => {
        s.off('error', reject);
        resolve(new RespClient(s));
      });
      s.once('error', reject);
    });
  }

  /** Send all commands in one write (pipelined) and collect the replies in order. */
  pipeline(cmds: readonly (readonly string[])[]): Promise<Reply[]> {
    const ps = cmds.map(
      () =>
        new Promise<Reply>((resolve, reject) => {
          this.waiting.push({ resolve, reject });
        }),
    );
    this.sock.write(Buffer.concat(cmds.map(encode)));
    return Promise.all(ps);
  }

  close(): void {
    this.sock.destroy();
  }
}
