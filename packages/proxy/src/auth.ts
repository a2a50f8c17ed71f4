import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { DcacheError } from './errors.js';
import { isLocalClient } from './security/client-address.js';

const digestOf = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time comparison of two secrets (hashing first, so lengths do not leak). */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(digestOf(a), digestOf(b));
}

/** The bearer token of a request, or undefined (other schemes and headers do not count). */
export function bearerToken(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(h);
  return m?.[1];
}

/** Check the bearer token against `expected`: missing → 401 UNAUTHORIZED, wrong → 403 FORBIDDEN. */
export function requireToken(req: FastifyRequest, expected: string): void {
  const got = bearerToken(req);
  if (got === undefined) throw new DcacheError('UNAUTHORIZED');
  if (!safeEqual(got, expected)) throw new DcacheError('FORBIDDEN');
}

/** The admin settings that decide who may flush and change the ring. */
export interface AdminAccess {
  token: string;
  protectedMode: boolean;
}

/**
 * Admin calls: with a token, the token is required. Without one (protected mode, as Redis
 * does it), only clients on this host are served; others get 403 PROTECTED_MODE, which says how
 * to set a token. `protectedMode: false` opens admin calls to everyone (a deliberate choice).
 */
export function requireAdmin(req: FastifyRequest, admin: AdminAccess): void {
  if (admin.token !== '') requireToken(req, admin.token);
  else if (admin.protectedMode && !isLocalClient(req.raw)) throw new DcacheError('PROTECTED_MODE');
}
