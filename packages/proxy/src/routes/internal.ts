import { checksum } from '@dcache/ring';
import type { FastifyError, FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { requireToken } from '../auth.js';
import { DcacheError } from '../errors.js';
import type { StaleJournal } from '../health/stale-journal.js';
import type { MembershipManager } from '../membership/membership-manager.js';
import type { PeerSync } from '../peers/peer-sync.js';
import {
  MAX_JOURNAL_KEYS,
  MAX_PEER_PAYLOAD,
  PATHS,
  parseExchange,
  parseJournalRequest,
  RefusalLog,
  senderOf,
} from '../peers/protocol.js';

/** What the peer exchange routes need. */
export interface InternalRoutesContext {
  manager: MembershipManager;
  sync: PeerSync;
  journal: StaleJournal;
  /** The cluster token; the routes must not be registered without one. */
  token: string;
  /** Where refused peer documents are logged (warn); default the app's logger. */
  log?: Logger;
}

/**
 * The peer exchange under /internal/v1 (only registered when a cluster token is configured,
 * so without one these paths answer 404). The token is checked before the body is read;
 * malformed, hostile or oversized bodies answer 400 INVALID_MEMBERSHIP (a merge refused for the
 * version cap: 409 VERSION_LIMIT), change nothing, and are logged at warn naming the sender.
 */
export async function internalRoutes(
  app: FastifyInstance,
  ctx: InternalRoutesContext,
): Promise<void> {
  if (ctx.token === '') throw new Error('internal routes need a cluster token');
  const { manager, sync, token, journal } = ctx;
  const refusals = new RefusalLog(ctx.log ?? app.log);
  await app.register(async (scope) => {
    scope.addHook('onRequest', async (req) => {
      requireToken(req, token);
    });
    // Plain JSON.parse: every key becomes an own data property ("__proto__" too; no prototype
    // is ever set), so a document carrying a reserved id reaches validation and is refused
    // naming the id and its sender, rather than as a bare parser error. Bodies stay bounded by
    // each route's bodyLimit.
    if (scope.hasContentTypeParser('application/json')) {
      scope.removeContentTypeParser('application/json');
    }
    scope.addContentTypeParser(
      'application/json',
      { parseAs: 'string', bodyLimit: MAX_PEER_PAYLOAD },
      (_req, body, done) => {
        try {
          done(null, JSON.parse(body as string));
        } catch (e) {
          done(
            new DcacheError(
              'INVALID_MEMBERSHIP',
              `the peer payload is not JSON: ${(e as Error).message}`,
            ),
            undefined,
          );
        }
      },
    );
    // Body errors on these routes are peer payload errors; the app's handler formats the rest.
    scope.setErrorHandler((err: FastifyError | DcacheError, req, _reply) => {
      let out: Error = err;
      if (typeof err.code === 'string' && err.code.startsWith('FST_ERR_CTP_')) {
        out = new DcacheError(
          'INVALID_MEMBERSHIP',
          err.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
            ? `the peer payload is larger than ${MAX_PEER_PAYLOAD} bytes`
            : `the peer payload is not a JSON object: ${err.message}`,
        );
      }
      if (
        out instanceof DcacheError &&
        (out.code === 'INVALID_MEMBERSHIP' || out.code === 'VERSION_LIMIT')
      ) {
        refusals.note(senderOf(req.body, req.ip), out, 'refused a peer document');
      }
      throw out;
    });

    const reply = (to: string, withDoc: boolean) => {
      const snap = manager.current;
      return {
        ...sync.envelope(to),
        digest: { version: snap.version, checksum: snap.checksum },
        ...(withDoc ? { doc: snap.doc } : {}),
      };
    };

    scope.get(PATHS.membership, { schema: { hide: true } }, async () => reply('', true));

    scope.post<{ Body: unknown }>(
      PATHS.digest,
      { bodyLimit: MAX_PEER_PAYLOAD, schema: { hide: true } },
      async (req) => {
        const msg = parseExchange(req.body, { digest: true });
        sync.heard(msg);
        if (msg.digest?.checksum === manager.current.checksum && !msg.seeded) {
          manager.clearSeeded();
        }
        return reply(msg.from.url, false);
      },
    );

    scope.post<{ Body: unknown }>(
      PATHS.sync,
      { bodyLimit: MAX_PEER_PAYLOAD, schema: { hide: true } },
      async (req) => {
        const msg = parseExchange(req.body, { doc: true });
        const theirs = msg.doc!;
        const held = checksum(theirs);
        sync.heard(msg, held);
        // Equal to ours (a resent document): no merge, no ring build (the checksum decides).
        manager.receive(theirs, {
          seeded: msg.seeded,
          checksum: held,
          ...(msg.from.url ? { origin: msg.from.url } : {}),
        });
        // Send ours back only when the sender does not already hold it; then push it too, so
        // that its reply confirms it holds ours (a routing change waits for that).
        const differs = manager.current.checksum !== held;
        if (differs && msg.from.url) setImmediate(() => sync.pushTo(msg.from.url));
        return reply(msg.from.url, differs);
      },
    );

    scope.post<{ Body: unknown }>(
      PATHS.journal,
      { bodyLimit: 64 * 1024, schema: { hide: true } },
      async (req) => {
        const node = parseJournalRequest(req.body);
        const t = journal.peek(node);
        if (t.flush || t.keys.length > MAX_JOURNAL_KEYS) return { node, complete: false };
        return { node, complete: true, keys: t.keys };
      },
    );
  });
}
