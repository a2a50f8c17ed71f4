import { hostname } from 'node:os';
import {
  activeNodes,
  emptyDoc,
  liveEntries,
  MAX_ENTRIES,
  type MembershipDoc,
  merge,
  type RingOptions,
  upsertEntry,
} from '@dcache/ring';
import type { Logger } from 'pino';
import type { AppOptions } from '../app.js';
import { type Config, ConfigError } from '../config.js';
import { DcacheError } from '../errors.js';
import { DnsDiscovery, parsePeersDns, peerUrl, selfAddresses } from '../peers/dns-discovery.js';
import { PeerClient } from '../peers/peer-client.js';
import { PeerSync } from '../peers/peer-sync.js';
import {
  type Exchange,
  normalizePeerUrl,
  PATHS,
  parseExchange,
  placementOf,
} from '../peers/protocol.js';
import { internalRoutes } from '../routes/internal.js';
import type { Runtime } from '../runtime.js';
import { type RoutingChange, seedDoc, snapshotOf } from './membership-holder.js';
import type { MembershipManager } from './membership-manager.js';
import {
  type MembershipState,
  moveAside,
  readStateFile,
  StateFileError,
  StatePersister,
} from './state-file.js';

/** The document a proxy starts from and where it came from. */
export interface InitialMembership {
  doc: MembershipDoc;
  /** Only the DC_CACHE_ADDRESSES seed (no state file, no peer with cluster history). */
  seeded: boolean;
  source: 'given' | 'file' | 'peer' | 'seed';
  /** DC_CLUSTER_PEERS_DNS discovery, resolved once already (with a cluster token only). */
  discovery?: DnsDiscovery;
}

/**
 * Start DNS discovery when DC_CLUSTER_PEERS_DNS is set and peer sync is on, and resolve once:
 * the peers it lists count as seeds at start. A failed first resolution is logged and counted;
 * the proxy starts with its configured peers and keeps resolving.
 */
async function startDiscovery(config: Config, log: Logger): Promise<DnsDiscovery | undefined> {
  const { peersDns, peersDnsInterval, peersDnsServers, token, advertiseUrl } = config.cluster;
  if (peersDns === '') return undefined;
  if (token === '') {
    log.warn('DC_CLUSTER_PEERS_DNS is set but DC_CLUSTER_TOKEN is empty: peer sync is off');
    return undefined;
  }
  const d = new DnsDiscovery({
    target: parsePeersDns(peersDns),
    interval: peersDnsInterval,
    servers: peersDnsServers,
    self: selfAddresses(config.server.host, advertiseUrl),
    log,
  });
  await d.resolve().catch(() => undefined);
  log.info({ name: peersDns, peers: d.urls, self: d.selfSeen ?? null }, 'peers from DNS at start');
  return d;
}

/** How long start-up waits for peers' documents before falling back to the seed list. */
export const BOOTSTRAP_TIMEOUT = 1_500;

/**
 * Read the state file at start. One that is intact but holds a document this version refuses
 * (a version above the cap, a reserved id: written by an older build that let a peer's document
 * in) is moved aside to `<file>.rejected-<time>` with one error log, and the proxy starts as if
 * there were none: stopping would only restart into the same refusal for ever. A damaged or
 * unreadable file still throws StateFileError (one line; the operator decides).
 */
async function loadStateFile(path: string, log: Logger): Promise<MembershipState | undefined> {
  try {
    return await readStateFile(path);
  } catch (e) {
    if (!(e instanceof StateFileError) || e.problem !== 'refused') throw e;
    const moved = await moveAside(path);
    log.error(
      { path, moved_to: moved, reason: e.message },
      `the state file (DC_CLUSTER_STATE_FILE) holds a membership document this version refuses: moved it aside to ${moved}; starting from the peers or DC_CACHE_ADDRESSES (check the ring with GET /api/v1/ring, then delete the moved file)`,
    );
    return undefined;
  }
}

/** Merge `docs` into `base`, leaving out (and logging) one that would pass MAX_ENTRIES. */
function mergeBounded(base: MembershipDoc, docs: Exchange[], log: Logger): MembershipDoc {
  let acc = base;
  for (const a of docs) {
    if (!a.doc) continue;
    const next = merge(acc, a.doc);
    const entries = Object.keys(next.entries).length;
    const registers = Object.keys(next.routing).length;
    if (entries > MAX_ENTRIES || registers > MAX_ENTRIES) {
      log.warn(
        { peer: a.from.url || a.from.id, entries, registers },
        `refused a peer document at start: merging it would pass ${MAX_ENTRIES} entries or routing registers`,
      );
      continue;
    }
    acc = next;
  }
  return acc;
}

/**
 * Where the membership comes from at start: the state file if there is one (a corrupt one
 * throws StateFileError; a refused one is moved aside); else the peers' documents if any peer
 * answers within `timeout`; else the DC_CACHE_ADDRESSES seed.
 */
export async function initialMembership(
  config: Config,
  log: Logger,
  opts: { doc?: MembershipDoc; timeout?: number } = {},
): Promise<InitialMembership> {
  if (opts.doc) return { doc: opts.doc, seeded: false, source: 'given' };
  const { stateFile, token, nodeId } = config.cluster;
  const discovery = await startDiscovery(config, log);
  const found = discovery ? { discovery } : {};
  if (stateFile !== '') {
    const state = await loadStateFile(stateFile, log);
    if (state) {
      log.info(
        { path: stateFile, nodes: activeNodes(state.doc).length, seeded: state.seeded },
        'membership loaded from the state file',
      );
      return { doc: state.doc, seeded: state.seeded, source: 'file', ...found };
    }
  }
  const peers = [...new Set([...config.cluster.peers, ...(discovery?.urls ?? [])])];
  const seed = seedDoc(config.cache.addresses);
  if (token === '' || peers.length === 0)
    return { doc: seed, seeded: true, source: 'seed', ...found };
  const answers = await fetchPeerDocs(peers, token, nodeId, opts.timeout ?? BOOTSTRAP_TIMEOUT, log);
  const real = answers.filter((a) => !a.seeded && a.doc);
  if (real.length > 0) {
    const doc = mergeBounded(emptyDoc(), real, log);
    log.info(
      { peers: real.map((a) => a.from.url || a.from.id), nodes: activeNodes(doc).length },
      'membership learned from peers at start',
    );
    return { doc, seeded: false, source: 'peer', ...found };
  }
  // Peers that only hold their own seed know no better: union of the seeds.
  const doc = mergeBounded(seed, answers, log);
  log.info(
    { answered: answers.length, peers: peers.length },
    'no peer knows the ring better: starting from DC_CACHE_ADDRESSES',
  );
  return { doc, seeded: true, source: 'seed', ...found };
}

/**
 * GET every peer's document at once; whatever answered within `timeout` ms. A document that
 * fails validation is left out with a warning naming the peer and why.
 */
async function fetchPeerDocs(
  peers: readonly string[],
  token: string,
  selfId: string,
  timeout: number,
  log: Logger,
): Promise<Exchange[]> {
  const got: Exchange[] = [];
  const clients = peers
    .map((p) => normalizePeerUrl(p))
    .filter((u): u is string => u !== undefined)
    .map((u) => new PeerClient(u, { token, timeout }));
  const all = Promise.allSettled(
    clients.map(async (c) => {
      const raw = await c.call('GET', PATHS.membership);
      let msg: Exchange;
      try {
        msg = parseExchange(raw, { doc: true });
      } catch (e) {
        if (e instanceof DcacheError) {
          log.warn({ peer: c.url, reason: e.message }, 'refused a peer document at start');
        }
        throw e;
      }
      if (msg.from.id !== selfId) got.push(msg);
    }),
  );
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([all, new Promise((r) => (timer = setTimeout(r, timeout)))]);
  clearTimeout(timer);
  await Promise.all(clients.map((c) => c.close()));
  return [...got];
}

/**
 * Run the change and merge paths once on a throw-away copy, so that the first real change
 * does not pay for lazy compilation (measured: ~150 ms per hop on a busy host).
 */
export function warmUp(doc: MembershipDoc, ringOpts: RingOptions): void {
  // Best effort: the document may not take one more entry (full, or `warm-up` at the version
  // cap), and a warm-up must never stop a start.
  try {
    const probe = upsertEntry(doc, { id: 'warm-up', address: '127.0.0.1:1' }, 'warm-up', 1);
    const wire = JSON.parse(JSON.stringify({ from: { id: 'w', url: '' }, peers: [], doc: probe }));
    const msg = parseExchange(wire, { doc: true });
    snapshotOf(merge(doc, msg.doc ?? probe), ringOpts);
  } catch {
    // the real paths compile on first use instead
  }
}

/** Membership wiring of a running proxy: what startServer adds to the app and must stop. */
export interface Cluster {
  manager: MembershipManager;
  sync: PeerSync | undefined;
  discovery: DnsDiscovery | undefined;
  persister: StatePersister | undefined;
  /** The peer-exchange routes. */
  appOptions: AppOptions;
  /** After listen: start anti-entropy, advertising `url` unless DC_CLUSTER_ADVERTISE_URL is set. */
  started(url: string): void;
  /** Stop peer sync and finish the pending state-file write. */
  stop(): Promise<void>;
}

/**
 * Attach the membership manager, state file and peer sync to a runtime. Writes the state
 * file at once when it was not the source (so an unwritable path fails at start).
 */
export async function setupCluster(rt: Runtime, init: InitialMembership): Promise<Cluster> {
  const { config, log, metrics, holder } = rt;
  const { stateFile, token, peers, nodeId } = config.cluster;
  const manager = rt.membership;
  warmUp(holder.current.doc, holder.ringOpts);

  let persister: StatePersister | undefined;
  if (stateFile !== '') {
    const p = new StatePersister(
      stateFile,
      () => ({ doc: holder.current.doc, seeded: manager.seeded }),
      { writer: nodeId, log },
    );
    persister = p;
    rt.persister = p;
    manager.onSeededCleared(() => void p.save());
    if (init.source !== 'file') await p.saveOrThrow();
  }
  if (init.source === 'file') metrics.membershipChanges.inc({ source: 'file' });

  const plugins: NonNullable<AppOptions['plugins']> = [];
  let sync: PeerSync | undefined;
  if (token !== '') {
    const s = new PeerSync({
      manager,
      log,
      metrics,
      token,
      seeds: peers,
      interval: config.cluster.syncInterval,
      ...(config.cluster.lease > 0 ? { lease: config.cluster.lease } : {}),
      placement: placementOf(config.cache.hash, config.cache.hashTag),
    });
    sync = s;
    if (init.discovery) {
      init.discovery.attach(metrics);
      s.setDiscovered(init.discovery.urls, true);
    }
    rt.attachPeers(s);
    plugins.push((app) =>
      internalRoutes(app, { manager, sync: s, token, journal: rt.journal, log }),
    );
  } else if (peers.length > 0) {
    log.warn('DC_CLUSTER_PEERS is set but DC_CLUSTER_TOKEN is empty: peer sync is off');
  }
  metrics.peers.set(sync?.size ?? 0);

  const discovery = sync ? init.discovery : undefined;
  return {
    manager,
    sync,
    discovery,
    persister,
    appOptions: { plugins },
    started(url) {
      if (!sync) return;
      const port = Number(new URL(url).port);
      // With DNS discovery the address the name lists for this proxy (its pod IP) is what
      // peers reach; a pod's host name resolves only behind a StatefulSet. Until the name lists
      // this proxy (a new pod's record may come a moment late) it advertises no URL: peers
      // reach it through DNS, and learn no host name they could not resolve.
      const configured = config.cluster.advertiseUrl;
      const self =
        configured ||
        (discovery
          ? discovery.selfSeen !== undefined
            ? peerUrl(discovery.selfSeen, port)
            : ''
          : `http://${hostname()}:${port}`);
      sync.start(self);
      discovery?.start(
        (urls) => sync?.setDiscovered(urls),
        (address) => {
          if (!configured) sync?.advertise(peerUrl(address, port));
        },
      );
      log.info({ self, peers: sync.size }, 'peer sync started');
    },
    async stop() {
      discovery?.stop();
      await sync?.stop();
      await persister?.close();
    },
  };
}

/**
 * DC_CACHE_ADDRESSES_AUTHORITATIVE: admin changes that make the ring's live nodes exactly
 * cache.addresses (missing ones added, others removed, draining listed ones set active; weights
 * kept), applied to whatever the proxy started from and pushed to peers as any admin change.
 * Nodes are added before any is removed, so the ring is never left empty. Returns the changes.
 */
export function applyAuthoritative(rt: Runtime): string[] {
  const { membership: manager, config, log } = rt;
  const want = config.cache.addresses;
  const live = liveEntries(manager.current.doc);
  const done: string[] = [];
  try {
    for (const address of want) {
      const e = live.find((x) => x.address === address);
      if (!e) {
        manager.addNode({ address });
        done.push(`added ${address}`);
      } else if (e.state === 'draining') {
        manager.updateNode(e.id, { state: 'active' });
        done.push(`activated ${e.id}`);
      }
    }
    for (const e of live) {
      if (want.includes(e.address)) continue;
      manager.removeNode(e.id);
      done.push(`removed ${e.id}`);
    }
  } catch (e) {
    throw new ConfigError(
      'DC_CACHE_ADDRESSES_AUTHORITATIVE',
      `cannot make the ring exactly DC_CACHE_ADDRESSES after ${done.length} change(s): ${(e as Error).message}`,
    );
  }
  if (done.length > 0)
    log.warn(
      {
        setting: 'DC_CACHE_ADDRESSES_AUTHORITATIVE',
        changes: done,
        version: manager.current.version,
      },
      'made the ring exactly DC_CACHE_ADDRESSES (admin changes made elsewhere are undone)',
    );
  return done;
}

/**
 * Apply DC_CACHE_ADDRESSES_AUTHORITATIVE at start. A proxy that starts from its seed list alone
 * (no state file, no peer answered in time) applies it once more after it first adopts a peer's
 * document, which replaces a seed list whole: the ring a start leaves is still exactly the list.
 */
export function authoritativeAtStart(rt: Runtime): void {
  if (!rt.config.cache.addressesAuthoritative) return;
  applyAuthoritative(rt);
  if (!rt.membership.seeded) return;
  const { holder, log } = rt;
  const again = (c: RoutingChange) => {
    if (c.source !== 'peer' || rt.membership.seeded) return;
    holder.off('change', again);
    // Not inside the emit: the runtime's listeners of this change run first, in their order.
    setImmediate(() => {
      try {
        applyAuthoritative(rt);
      } catch (e) {
        log.error({ err: (e as Error).message }, 'DC_CACHE_ADDRESSES_AUTHORITATIVE not applied');
      }
    });
  };
  holder.on('change', again);
}
