import { createSocket as createUdp, type RemoteInfo } from 'node:dgram';
import { isIP } from 'node:net';
import { registerCleanup } from './cleanup.js';

const TYPE_A = 1;
const TYPE_AAAA = 28;

/** How the server answers every query for now. */
export type DnsMode = 'answer' | 'servfail' | 'drop';

/** A tiny authoritative DNS server on 127.0.0.1 (UDP) whose A/AAAA records a test changes. */
export interface TestDnsServer {
  /** `127.0.0.1:port`, as `dns.Resolver#setServers` and DC_CLUSTER_PEERS_DNS_SERVERS take it. */
  readonly address: string;
  readonly port: number;
  /** Replace the addresses of `name` (IPv4 and IPv6 mixed; empty = the name answers no record). */
  set(name: string, addresses: readonly string[]): void;
  /** `answer` (default), `servfail` (rcode 2 to everything) or `drop` (no reply: a timeout). */
  mode(m: DnsMode): void;
  /** Queries received so far. */
  readonly queries: number;
  close(): Promise<void>;
}

function readName(msg: Buffer, at: number): { name: string; end: number } {
  const labels: string[] = [];
  let i = at;
  for (;;) {
    const len = msg[i];
    if (len === undefined) throw new Error('truncated name');
    if (len === 0) return { name: labels.join('.').toLowerCase(), end: i + 1 };
    if (len >= 0xc0) throw new Error('compressed question names are not supported');
    labels.push(msg.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
}

function ipv6Bytes(a: string): Buffer {
  const [head = '', tail = ''] = a.includes('::') ? a.split('::') : [a, ''];
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  return out;
}

/**
 * Start the server on a free UDP port of 127.0.0.1. Names are matched case-insensitively
 * without a trailing dot; an unknown name answers NXDOMAIN, a known name without records of
 * the asked type answers NOERROR with no answer (what real servers do).
 */
export async function startDnsServer(): Promise<TestDnsServer> {
  const records = new Map<string, string[]>();
  let mode: DnsMode = 'answer';
  let queries = 0;
  const sock = createUdp('udp4');
  sock.on('message', (msg: Buffer, from: RemoteInfo) => {
    queries++;
    if (mode === 'drop' || msg.length < 12) return;
    let q: { name: string; end: number };
    try {
      q = readName(msg, 12);
    } catch {
      return;
    }
    const qtype = msg.readUInt16BE(q.end);
    const question = msg.subarray(12, q.end + 4);
    const known = records.get(q.name.replace(/\.$/, ''));
    const rcode = mode === 'servfail' ? 2 : known === undefined ? 3 : 0;
    const answers =
      rcode !== 0
        ? []
        : (known ?? []).filter(
            (a) => isIP(a) === (qtype === TYPE_A ? 4 : qtype === TYPE_AAAA ? 6 : -1),
          );
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0);
    // QR, AA, RD copied, RA; the rcode.
    header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    const parts = [header, question];
    for (const a of answers) {
      const data = isIP(a) === 4 ? Buffer.from(a.split('.').map(Number)) : ipv6Bytes(a);
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
      rr.writeUInt16BE(isIP(a) === 4 ? TYPE_A : TYPE_AAAA, 2);
      rr.writeUInt16BE(1, 4); // class IN
      rr.writeUInt32BE(0, 6); // TTL 0: nothing cached between rounds
      rr.writeUInt16BE(data.length, 10);
      parts.push(rr, data);
    }
    sock.send(Buffer.concat(parts), from.port, from.address);
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, '127.0.0.1', () => {
      sock.off('error', reject);
      resolve();
    });
  });
  const port = sock.address().port;
  let closed = false;
  const close = () =>
    new Promise<void>((resolve) => {
      if (closed) return resolve();
      closed = true;
      sock.close(() => resolve());
    });
  registerCleanup(close);
  return {
    address: `127.0.0.1:${port}`,
    port,
    set(name, addresses) {
      for (const a of addresses) if (isIP(a) === 0) throw new Error(`${a} is not an IP address`);
      records.set(name.toLowerCase().replace(/\.$/, ''), [...addresses]);
    },
    mode(m) {
      mode = m;
    },
    get queries() {
      return queries;
    },
    close,
  };
}
