import type { IncomingMessage } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';

/** Decides whether the hop at `address` is a trusted reverse proxy (Fastify's trustProxy form). */
export type TrustFn = (address: string, hop: number) => boolean;

/**
 * The trust function of `server.trusted_proxies` (addresses and CIDRs), or undefined when the
 * list is empty: then X-Forwarded-For is never believed and the client is the socket's peer.
 */
export function trustFn(trusted: readonly string[]): TrustFn | undefined {
  return trusted.length === 0 ? undefined : proxyAddr.compile([...trusted]);
}

/**
 * The client's address: the socket's peer, or, when that peer is a trusted proxy, the nearest
 * X-Forwarded-For entry that is not one (as Fastify's `req.ip` with the same trust function).
 */
export function clientAddress(req: IncomingMessage, trust: TrustFn | undefined): string {
  if (trust === undefined) return req.socket.remoteAddress ?? '';
  return proxyAddr(req, trust);
}

const FORWARDING_HEADERS = ['x-forwarded-for', 'forwarded', 'x-real-ip'] as const;

/**
 * True when the request comes from this host itself: a loopback peer that relays nobody. A
 * request a local reverse proxy forwards (it carries X-Forwarded-For, Forwarded or X-Real-IP) is
 * not local, whatever the socket says: protected mode must not open to the proxy's clients.
 */
export function isLocalClient(req: IncomingMessage): boolean {
  const a = req.socket.remoteAddress ?? '';
  const loopback =
    a === '::1' || a.startsWith('127.') || a.startsWith('::ffff:127.') || a === '::ffff:7f00:1';
  if (!loopback) return false;
  for (const h of FORWARDING_HEADERS) if (req.headers[h] !== undefined) return false;
  return true;
}
