import type { LookupAddress } from 'node:dns';
import { createServer, type Server } from 'node:net';
import { waitFor } from '@dcache/test-utils';
import { afterEach, describe, expect, it } from 'vitest';
import { DcacheError } from '../src/errors.js';
import { type LookupAll, NodeAllowList } from '../src/security/node-allow.js';
import { errorClass, NodeClient, type NodeClientOptions } from '../src/upstream/node-client.js';

/** A resolver from a table; counts its calls. */
function table(map: Record<string, string[]>): LookupAll & { calls: string[] } {
  const calls: string[] = [];
  const f = async (host: string): Promise<LookupAddress[]> => {
    calls.push(host);
    const a = map[host];
    if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return Object.assign(f, { calls });
}

describe('NodeAllowList: which addresses may become nodes', () => {
  const dns = table({
    'inside.example': ['10.1.2.3', '10.9.9.9'],
    'mixed.example': ['10.1.2.3', '192.0.2.7'],
    'v6.example': ['fd00::5'],
    'nowhere.example': [],
  });
  const allow = new NodeAllowList(['10.0.0.0/8', '192.168.1.5', 'fd00::/8', '*.redis.svc'], dns);

  it.for([
    // [address, allowed, why]
    ['10.2.3.4:6379', true, 'IP inside a CIDR'],
    ['192.168.1.5:6379', true, 'a listed IP'],
    ['192.168.1.6:6379', false, 'an IP next to a listed one'],
    ['127.0.0.1:6379', false, 'loopback not listed'],
    ['169.254.169.254:80', false, 'cloud metadata'],
    ['[fd00::1]:6379', true, 'IPv6 inside a CIDR'],
    ['[::1]:6379', false, 'IPv6 loopback not listed'],
    ['[::ffff:10.0.0.1]:6379', true, 'IPv4-mapped IPv6 of a listed CIDR'],
    ['cache-0.redis.svc:6379', true, 'host pattern (* is one label)'],
    ['CACHE-0.Redis.Svc:6379', true, 'host names compare without case'],
    ['a.b.redis.svc:6379', false, 'pattern: * is exactly one label'],
    ['redis.svc:6379', false, 'pattern: * is not empty'],
    ['inside.example:6379', true, 'every resolved address inside the CIDRs'],
    ['v6.example:6379', true, 'resolved IPv6 inside'],
    ['mixed.example:6379', false, 'one resolved address outside'],
    ['nowhere.example:6379', false, 'resolves to nothing'],
    ['unknown.example:6379', false, 'does not resolve'],
    ['no-port', false, 'not host:port'],
  ] as const)('%s → %s (%s)', async ([address, allowed]) => {
    const d = await allow.decide(address);
    expect(d.allowed, d.reason).toBe(allowed);
    expect(d.reason).toMatch(/DC_CACHE_ALLOWED_ADDRESSES|host:port/);
  });

  it('decides IP literals and host patterns without resolving; names via DNS are marked', async () => {
    const before = dns.calls.length;
    expect(allow.decideNow('10.2.3.4:1')?.allowed).toBe(true);
    expect(allow.decideNow('x.redis.svc:1')?.allowed).toBe(true);
    expect(allow.decideNow('127.0.0.1:1')?.allowed).toBe(false);
    expect(allow.decideNow('inside.example:1')).toBeUndefined();
    expect(dns.calls.length).toBe(before);
    expect((await allow.decide('inside.example:1')).resolved).toBe(true);
    expect((await allow.decide('10.2.3.4:1')).resolved).toBeUndefined();
  });

  it('an empty list allows everything, without resolving', async () => {
    const d = table({});
    const open = new NodeAllowList([], d);
    expect(open.empty).toBe(true);
    for (const a of ['127.0.0.1:6379', 'anything.example:1', '[::1]:2'])
      expect((await open.decide(a)).allowed).toBe(true);
    expect(d.calls).toEqual([]);
  });

  it('with host patterns only, another name is refused without a DNS query', async () => {
    const d = table({ 'evil.example': ['10.0.0.1'] });
    const patterns = new NodeAllowList(['*.redis.svc'], d);
    const r = await patterns.decide('evil.example:6379');
    expect(r.allowed).toBe(false);
    expect(r.reason).toMatch(/matches no host pattern/);
    expect(d.calls).toEqual([]);
  });

  it('connectLookup refuses a name that now resolves outside the list (DNS rebinding)', async () => {
    let target = ['10.0.0.7'];
    const list = new NodeAllowList(['10.0.0.0/8'], async () =>
      target.map((address) => ({ address, family: 4 })),
    );
    const call = (all: boolean) =>
      new Promise<{ err: NodeJS.ErrnoException | null; address: unknown; family?: number }>((r) =>
        list.connectLookup('n.example', { all }, (err, address, family) =>
          r({ err, address, ...(family !== undefined ? { family } : {}) }),
        ),
      );
    expect(await call(false)).toEqual({ err: null, address: '10.0.0.7', family: 4 });
    expect((await call(true)).address).toEqual([{ address: '10.0.0.7', family: 4 }]);
    target = ['10.0.0.7', '203.0.113.9'];
    const bad = await call(false);
    expect(bad.err?.message).toMatch(/address not allowed: .*203\.0\.113\.9/);
  });
});

describe('errorClass', () => {
  it.for([
    ['address not allowed: 127.0.0.2 is outside DC_CACHE_ALLOWED_ADDRESSES', 'not_allowed'],
    ['WRONGPASS invalid username-password pair or user is disabled.', 'auth'],
    ['NOAUTH Authentication required.', 'auth'],
    ["NOPERM this user has no permissions to run the 'info' command", 'auth'],
    ['self-signed certificate in certificate chain', 'tls'],
    ['unable to verify the first certificate', 'tls'],
    [
      "Hostname/IP does not match certificate's altnames: Host: x. is not in the cert's altnames: DNS:localhost",
      'tls',
    ],
    ['140:error:0A000102:SSL routines::unsupported protocol', 'tls'],
    ['getaddrinfo ENOTFOUND redis-9.example', 'dns'],
    ['connect ECONNREFUSED 127.0.0.1:6390', 'refused'],
    ['connect ETIMEDOUT', 'timeout'],
    ['probe: PING timed out after 150 ms', 'timeout'],
    ['node a: Command timed out after 500 ms', 'timeout'],
    ['Connection is closed.', 'unavailable'],
    ['read ECONNRESET', 'unavailable'],
  ] as const)('%s → %s', ([message, cls]) => {
    expect(errorClass(message)).toBe(cls);
  });
});

describe('NodeClient of an address that is not allowed', () => {
  const servers: Server[] = [];
  const clients: NodeClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
  });

  /** A TCP listener that records every connection and every byte it receives. */
  async function trap(host = '127.0.0.1') {
    const seen = { connections: 0, bytes: '' };
    const s = createServer((sock) => {
      seen.connections++;
      sock.on('data', (d) => {
        seen.bytes += d.toString();
      });
      sock.on('error', () => {});
    });
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, host, () => r()));
    const port = (s.address() as { port: number }).port;
    return { seen, port, address: `${host}:${port}` };
  }

  const base = (allow: NodeAllowList): NodeClientOptions => ({
    password: 'the-redis-password',
    database: 0,
    poolSize: 2,
    connectTimeout: 2_000,
    reconnectMax: 100,
    allow,
  });

  it('opens no connection, sends nothing, and fails every command at once with NODE_UNAVAILABLE', async () => {
    const refusedTrap = await trap();
    const allowedTrap = await trap();
    const refused = new NodeClient(
      'evil',
      refusedTrap.address,
      base(new NodeAllowList(['10.0.0.0/8'])),
    );
    const control = new NodeClient(
      'good',
      allowedTrap.address,
      base(new NodeAllowList(['127.0.0.1'])),
    );
    clients.push(refused, control);

    expect(refused.state).toBe('refused');
    expect(refused.connected).toBe(false);
    expect(refused.lastError).toMatch(/^address not allowed: 127\.0\.0\.1 is outside/);
    expect(await refused.waitReady(5_000)).toBe(false);
    let thrown: unknown;
    try {
      refused.conn();
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(DcacheError);
    expect((thrown as DcacheError).code).toBe('NODE_UNAVAILABLE');
    expect((thrown as DcacheError).message).toMatch(/address not allowed/);
    await expect(refused.pingAll()).rejects.toThrow(/address not allowed/);
    expect(errorClass(refused.lastError ?? '')).toBe('not_allowed');

    // The allowed one connects (and sends AUTH with the password): by then the refused one
    // would have connected too, had it tried.
    await waitFor(() => allowedTrap.seen.bytes.includes('the-redis-password'), {
      timeout: 10_000,
      message: 'the allowed node to get a connection and AUTH',
    });
    expect(refusedTrap.seen).toEqual({ connections: 0, bytes: '' });
  });

  it('a host name allowed through DNS is checked again at every connection', async () => {
    const t = await trap();
    const lookups: string[] = [];
    const allow = new NodeAllowList(['127.0.0.0/8'], async (host) => {
      lookups.push(host);
      return [{ address: '127.0.0.1', family: 4 }];
    });
    const c = new NodeClient('named', `redis-a.internal:${t.port}`, {
      ...base(allow),
      poolSize: 1,
    });
    clients.push(c);
    await waitFor(() => t.seen.bytes.includes('the-redis-password'), {
      timeout: 10_000,
      message: 'the named node to connect through the guarded lookup',
    });
    expect(c.state).toBe('open');
    expect(lookups.length).toBeGreaterThanOrEqual(2); // the decision, then the connection

    // DNS rebinding: the name is inside when decided, elsewhere when connecting.
    let calls = 0;
    const rebinding = new NodeAllowList(['127.0.0.0/8'], async () => {
      calls++;
      return [{ address: calls === 1 ? '127.0.0.1' : '192.0.2.1', family: 4 }];
    });
    const before = t.seen.connections;
    const again = new NodeClient('rebound', `redis-b.internal:${t.port}`, {
      ...base(rebinding),
      poolSize: 1,
    });
    clients.push(again);
    await waitFor(() => /address not allowed/.test(again.lastError ?? ''), {
      timeout: 10_000,
      message: 'the rebound name to be refused at connect time',
    });
    expect(again.state).toBe('open');
    expect(again.connected).toBe(false);
    expect(again.lastError).toMatch(/192\.0\.2\.1, outside DC_CACHE_ALLOWED_ADDRESSES/);
    expect(errorClass(again.lastError ?? '')).toBe('not_allowed');
    expect(t.seen.connections).toBe(before);
  });
});
