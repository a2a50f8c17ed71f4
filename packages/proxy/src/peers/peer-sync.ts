import type { Logger } from 'pino';
import { DcacheError } from '../errors.js';
import type { MembershipManager } from '../membership/membership-manager.js';
import type { Metrics } from '../metrics.js';
import { PeerClient, PeerError } from './peer-client.js';
import {
  type Envelope,
  type Exchange,
  MAX_PEER_URLS,
  normalizePeerUrl,
  PATHS,
  parseExchange,
  parseJournal,
} from './protocol.js';

/** Options of PeerSync. */
export interface PeerSyncOptions {
  manager: MembershipManager;
  log: Logger;
  metrics: Metrics;
  /** Cluster token (non-empty: without one there is no PeerSync). */
  token: string;
  /** This proxy's key placement (`placementOf(hash, hashTag)`), compared with every peer's. */
  placement?: string;
  /** Configured peer URLs (DC_CLUSTER_PEERS). */
  seeds: readonly string[];
  /** Anti-entropy interval (ms); each round waits interval ± 20%. */
  interval: number;
  /** Bound on one call to a peer (ms); default clamp(2 × interval, 1 s, 5 s). */
  timeout?: number;
  /** Push attempts per change and peer before leaving it to anti-entropy; default 5. */
  pushAttempts?: number;
  /** First retry delay (ms), doubled per attempt up to 2 s; default 100. */
  backoffBase?: number;
  /** A learned (not configured) peer without a successful exchange for this long is forgotten. */
  forgetAfter?: number;
  /** Peers are passed on to others only if an exchange with them succeeded this recently. */
  shareWindow?: number;
  /** Most peers kept (configured + learned). */
  maxPeers?: number;
  /**
   * A peer not heard from successfully for this long is not waited for when a routing change is
   * confirmed (ms; default 2 × timeout + 4 × interval). It has fenced its own keys by then: a
   * proxy whose event loop stood still for half of it re-syncs with every peer before serving.
   */
  lease?: number;
}

/** What the peers' journals say about the keys changed while a node was out. */
export type PeerJournals = { flush: true; why: string } | { flush: false; keys: string[] };

interface PeerState {
  url: string;
  seed: boolean;
  /** Listed by the last good resolution of cluster.peers_dns: kept like a seed while listed. */
  dns: boolean;
  client: PeerClient;
  id: string | undefined;
  knownSince: number;
  lastSuccess: number | undefined;
  lastError: string | undefined;
  failures: number;
  failuresTotal: number;
  version: number | undefined;
  checksum: string | undefined;
  seeded: boolean | undefined;
  placement: string | undefined;
  /** performance.now() of the last successful exchange and of the last outcome (ok or failed). */
  lastOkMono: number;
  lastOutcomeMono: number;
  /** An anti-entropy round is in flight. */
  busy: boolean;
  /** A push loop runs; `pushDirty` asks it to send the current document once more. */
  pushing: boolean;
  pushDirty: boolean;
}

/** One peer as GET /api/v1/ring shows it. */
export interface PeerView {
  url: string;
  id: string | null;
  seed: boolean;
  /** Listed by DC_CLUSTER_PEERS_DNS now. */
  dns: boolean;
  last_success: string | null;
  last_success_age_ms: number | null;
  version: number | null;
  checksum: string | null;
  in_sync: boolean;
  /** The peer's key hash and hash tag; when it differs from ours, the same ring maps keys differently. */
  placement: string | null;
  placement_mismatch: boolean;
  failures: number;
  failures_total: number;
  last_error: string | null;
}

/**
 * Membership sync with peer proxies over HTTP (undici, one keep-alive pool per peer).
 * Every local change is pushed to every peer at once (retried with exponential backoff);
 * anti-entropy rounds compare digests and exchange full documents only when they differ.
 * Peers are the configured seeds plus those learned from exchanges.
 */
export class PeerSync {
  private readonly manager: MembershipManager;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly token: string;
  readonly interval: number;
  private readonly timeout: number;
  private readonly pushAttempts: number;
  private readonly backoffBase: number;
  private readonly forgetAfter: number;
  private readonly shareWindow: number;
  private readonly maxPeers: number;
  private readonly placement: string | undefined;
  /** How long peers wait for a silent peer before counting it gone (ms). */
  readonly lease: number;
  /** A stall of the event loop this long means: re-sync with every peer before serving (ms). */
  readonly pauseLimit: number;
  /** performance.now() since which every peer must have had an exchange outcome (a re-sync). */
  private resyncFrom = performance.now();
  private lastTick = performance.now();
  private ticker: NodeJS.Timeout | undefined;
  private readonly peers = new Map<string, PeerState>();
  /** URLs that turned out to be this proxy or another URL of a known peer. */
  private readonly ignored = new Set<string>();
  /**
   * URLs that left the DNS answer, with when: not learned again from other peers' lists (which
   * still name a pod that just went away) until DNS lists them again or `forgetAfter` passed.
   */
  private readonly leftDns = new Map<string, number>();
  private selfUrl = '';
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;
  /** Called when a peer's confirmed checksum or reachability changed (runtime re-checks fences). */
  onPeerState: () => void = () => {};

  constructor(opts: PeerSyncOptions) {
    this.manager = opts.manager;
    this.log = opts.log;
    this.metrics = opts.metrics;
    this.token = opts.token;
    this.interval = opts.interval;
    this.timeout = opts.timeout ?? Math.min(5_000, Math.max(1_000, 2 * opts.interval));
    this.pushAttempts = opts.pushAttempts ?? 5;
    this.backoffBase = opts.backoffBase ?? 100;
    this.forgetAfter = opts.forgetAfter ?? Math.max(300_000, 100 * opts.interval);
    this.shareWindow = opts.shareWindow ?? Math.max(60_000, 10 * opts.interval);
    this.maxPeers = opts.maxPeers ?? MAX_PEER_URLS;
    this.placement = opts.placement;
    this.lease = opts.lease ?? 2 * this.timeout + 4 * opts.interval;
    this.pauseLimit = this.lease / 2;
    for (const s of opts.seeds) {
      const url = normalizePeerUrl(s);
      // Seeds start without an outcome: this proxy's view is not fresh until it met them.
      if (url) this.add(url, true, Number.NEGATIVE_INFINITY);
    }
  }

  /** A routing change was applied here: push it to every peer that does not hold it already. */
  changed(origin: string | undefined): void {
    const mine = this.manager.current.checksum;
    for (const p of this.peers.values()) {
      if (p.url === origin && p.checksum === mine) continue;
      this.push(p);
    }
  }

  /** Push the current document to the peer at `url` now (its reply confirms what it holds). */
  pushTo(url: string): void {
    const p = this.peers.get(url);
    if (p && !this.stopped) this.push(p);
  }

  /** A peer counts for confirmation while a successful exchange is more recent than the lease. */
  private reachable(p: PeerState, now: number): boolean {
    return now - p.lastOkMono <= this.lease;
  }

  /** Every reachable peer holds `checksum` (or there is none). */
  confirmed(checksum: string): boolean {
    const now = performance.now();
    for (const p of this.peers.values()) {
      if (p.checksum !== checksum && this.reachable(p, now)) return false;
    }
    return true;
  }

  /**
   * Until when (performance.now()) this proxy may serve with its view: -Infinity while it
   * re-syncs (after start, or after its event loop stood still longer than `pauseLimit`: it was
   * paused, and peers may have stopped waiting for it), else a little past the last tick.
   */
  leaseUntil(): number {
    for (const p of this.peers.values())
      if (p.lastOutcomeMono < this.resyncFrom) return Number.NEGATIVE_INFINITY;
    return this.peers.size === 0 ? Number.POSITIVE_INFINITY : this.lastTick + this.pauseLimit;
  }

  /** Watch the event loop: a stall past `pauseLimit` starts a re-sync with every peer. */
  private watch = (): void => {
    const now = performance.now();
    if (now - this.lastTick > this.pauseLimit) {
      this.resyncFrom = now;
      this.log.warn(
        { stalled_ms: Math.round(now - this.lastTick) },
        'event loop stood still (paused?): re-syncing with every peer before serving',
      );
      for (const p of this.peers.values()) if (!p.busy && !p.pushing) void this.antiEntropy(p);
    }
    this.lastTick = now;
    this.onPeerState();
  };

  /**
   * Ask every reachable peer which keys it changed while `node` was out (the node's routing is
   * `rejoining` by then, so no peer adds any). Any peer that cannot answer means: flush.
   */
  async journals(node: string): Promise<PeerJournals> {
    const keys = new Set<string>();
    const asked = [...this.peers.values()];
    const results = await Promise.allSettled(
      asked.map(async (p) => {
        const raw = await p.client.call('POST', PATHS.journal, { ...this.envelope(p.url), node });
        return parseJournal(raw, node);
      }),
    );
    for (let i = 0; i < results.length; i++) {
      const r = results[i] as PromiseSettledResult<{ complete: boolean; keys: string[] }>;
      const p = asked[i] as PeerState;
      if (r.status === 'rejected') {
        // A peer never reached since this proxy started is across a partition (the honest
        // limit); one that answered before may hold writes of the node's outage: flush.
        if (p.lastOkMono === Number.NEGATIVE_INFINITY) continue;
        return { flush: true, why: `peer ${p.url} did not answer: ${(r.reason as Error).message}` };
      }
      if (!r.value.complete) return { flush: true, why: `peer ${p.url} cannot list its writes` };
      for (const k of r.value.keys) keys.add(k);
    }
    return { flush: false, keys: [...keys] };
  }

  /** This proxy's identity and known peers, as sent in every message to `to`. */
  envelope(to?: string): Envelope {
    const now = Date.now();
    const peers: string[] = [];
    for (const p of this.peers.values()) {
      if (p.url === to || p.lastSuccess === undefined) continue;
      if (now - p.lastSuccess <= this.shareWindow) peers.push(p.url);
    }
    return {
      from: { id: this.manager.writer, url: this.selfUrl },
      peers,
      seeded: this.manager.seeded,
      ...(this.placement === undefined ? {} : { placement: this.placement }),
    };
  }

  /** Start anti-entropy; `selfUrl` is the URL peers reach this proxy at. */
  start(selfUrl: string): void {
    const self = normalizePeerUrl(selfUrl) ?? '';
    this.selfUrl = self;
    if (self) this.markIgnored(self, 'this proxy');
    this.running = true;
    this.lastTick = performance.now();
    this.ticker = setInterval(this.watch, Math.min(100, this.pauseLimit / 4));
    this.ticker.unref();
    // First round soon after start, so peers are met (and learned) without waiting an interval.
    this.schedule(Math.random() * Math.min(100, this.interval / 5));
  }

  /** Advertise `url` from now on (the address DNS discovery found for this proxy, found late). */
  advertise(url: string): void {
    const self = normalizePeerUrl(url);
    if (!self || self === this.selfUrl) return;
    this.selfUrl = self;
    this.markIgnored(self, 'this proxy');
    this.log.info({ self }, 'advertising the address DNS lists for this proxy');
  }

  /** Stop timers and close every peer's connections; in-flight calls are abandoned. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.running = false;
    clearTimeout(this.timer);
    clearInterval(this.ticker);
    await Promise.all([...this.peers.values()].map((p) => p.client.destroy()));
  }

  /** The peers as GET /api/v1/ring lists them. */
  list(): PeerView[] {
    const now = Date.now();
    const mine = this.manager.current.checksum;
    return [...this.peers.values()]
      .sort((a, b) => (a.url < b.url ? -1 : 1))
      .map((p) => ({
        url: p.url,
        id: p.id ?? null,
        seed: p.seed,
        dns: p.dns,
        last_success: p.lastSuccess === undefined ? null : new Date(p.lastSuccess).toISOString(),
        last_success_age_ms: p.lastSuccess === undefined ? null : now - p.lastSuccess,
        version: p.version ?? null,
        checksum: p.checksum ?? null,
        in_sync: p.checksum === mine,
        placement: p.placement ?? null,
        placement_mismatch: this.mismatch(p.placement),
        failures: p.failures,
        failures_total: p.failuresTotal,
        last_error: p.lastError ?? null,
      }));
  }

  /** Number of peers known. */
  get size(): number {
    return this.peers.size;
  }

  /**
   * A message arrived from a peer: learn its URL and the peers it knows, note its digest (or the
   * checksum of the document it sent: what it holds).
   */
  heard(msg: Exchange, holds?: string): void {
    if (msg.from.id === this.manager.writer) {
      // Our own call (a seed listing this proxy) is expected; another URL means a shared id.
      if (msg.from.url !== this.selfUrl) {
        this.log.warn(
          { from: msg.from },
          "a peer uses this proxy's node id: give every proxy its own DC_CLUSTER_NODE_ID",
        );
      }
      return;
    }
    if (msg.from.url) {
      this.learn(msg.from.url);
      const p = this.peers.get(msg.from.url);
      if (p) {
        p.id = msg.from.id;
        p.seeded = msg.seeded;
        this.notePlacement(p, msg.placement);
        if (msg.digest) {
          p.version = msg.digest.version;
          p.checksum = msg.digest.checksum;
        }
        if (holds !== undefined) p.checksum = holds;
        // It reached us: it counts as reachable as long as after a successful call of ours.
        p.lastOkMono = performance.now();
        this.onPeerState();
      }
    }
    for (const url of msg.peers) this.learn(url);
  }

  /**
   * The peers cluster.peers_dns lists now (this proxy left out). New ones are met at once; one
   * no longer listed is forgotten at once (unless configured in DC_CLUSTER_PEERS): its pod went
   * away, and waiting `forgetAfter` would count it as a failing peer for minutes. `initial` is
   * the answer before start: like seeds, this proxy's view is not fresh until it met them.
   */
  setDiscovered(urls: readonly string[], initial = false): void {
    const listed = new Set<string>();
    for (const raw of urls) {
      const url = normalizePeerUrl(raw);
      if (!url || this.ignored.has(url) || url === this.selfUrl) continue;
      listed.add(url);
      this.leftDns.delete(url);
      const known = this.peers.get(url);
      if (known) {
        known.dns = true;
        continue;
      }
      if (this.peers.size >= this.maxPeers) continue;
      const p = this.add(url, false, initial ? Number.NEGATIVE_INFINITY : performance.now());
      p.dns = true;
      if (!initial) this.log.info({ peer: url }, 'peer found in DNS');
      if (this.running) void this.antiEntropy(p);
    }
    const now = Date.now();
    for (const p of [...this.peers.values()]) {
      if (!p.dns || listed.has(p.url)) continue;
      p.dns = false;
      if (p.seed) continue;
      this.leftDns.set(p.url, now);
      this.remove(p, 'no longer in DNS (DC_CLUSTER_PEERS_DNS)');
    }
    // Bounded: the oldest entries go first (Map keeps insertion order).
    for (const [url, at] of this.leftDns) {
      if (this.leftDns.size <= this.maxPeers && now - at <= this.forgetAfter) break;
      this.leftDns.delete(url);
    }
  }

  private learn(raw: string): void {
    const url = normalizePeerUrl(raw);
    if (!url || this.peers.has(url) || this.ignored.has(url) || url === this.selfUrl) return;
    const left = this.leftDns.get(url);
    if (left !== undefined && Date.now() - left <= this.forgetAfter) return;
    if (this.peers.size >= this.maxPeers) return;
    const p = this.add(url, false);
    this.log.info({ peer: url }, 'learned a peer');
    // Meet it now rather than at the next round.
    if (this.running) void this.antiEntropy(p);
  }

  private add(url: string, seed: boolean, outcome = performance.now()): PeerState {
    const p: PeerState = {
      url,
      seed,
      dns: false,
      client: new PeerClient(url, { token: this.token, timeout: this.timeout }),
      id: undefined,
      knownSince: Date.now(),
      lastSuccess: undefined,
      lastError: undefined,
      failures: 0,
      failuresTotal: 0,
      version: undefined,
      checksum: undefined,
      seeded: undefined,
      placement: undefined,
      lastOkMono: Number.NEGATIVE_INFINITY,
      lastOutcomeMono: outcome,
      busy: false,
      pushing: false,
      pushDirty: false,
    };
    this.peers.set(url, p);
    this.metrics.initPeer(url);
    this.metrics.peers.set(this.peers.size);
    return p;
  }

  private remove(p: PeerState, why: string): void {
    if (this.peers.get(p.url) !== p) return;
    this.peers.delete(p.url);
    void p.client.close();
    this.metrics.removePeer(p.url);
    this.metrics.peers.set(this.peers.size);
    this.log.info({ peer: p.url, why }, 'forgot a peer');
    this.onPeerState();
  }

  private markIgnored(url: string, why: string): void {
    this.ignored.add(url);
    const p = this.peers.get(url);
    if (p) this.remove(p, why);
  }

  private schedule(delay: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => this.tick(), delay);
    this.timer.unref();
  }

  private tick(): void {
    const now = Date.now();
    for (const p of [...this.peers.values()]) {
      if (!p.seed && !p.dns && now - (p.lastSuccess ?? p.knownSince) > this.forgetAfter) {
        this.remove(p, `no successful exchange for ${Math.round(this.forgetAfter / 1000)} s`);
        continue;
      }
      if (!p.busy && !p.pushing) void this.antiEntropy(p);
    }
    this.schedule(this.interval * (0.8 + 0.4 * Math.random()));
  }

  private push(p: PeerState): void {
    p.pushDirty = true;
    if (p.pushing) return;
    p.pushing = true;
    void this.pushLoop(p).finally(() => {
      p.pushing = false;
    });
  }

  private async pushLoop(p: PeerState): Promise<void> {
    let attempt = 0;
    while (p.pushDirty && !this.stopped && this.peers.get(p.url) === p) {
      p.pushDirty = false;
      const sent = performance.now();
      try {
        await this.sendDoc(p);
        this.ok(p, 'push', sent);
        attempt = 0;
      } catch (e) {
        this.fail(p, 'push', e, sent);
        attempt++;
        if (attempt >= this.pushAttempts) return; // anti-entropy takes over
        p.pushDirty = true;
        const backoff = Math.min(2_000, this.backoffBase * 2 ** (attempt - 1));
        await delay(backoff * (0.8 + 0.4 * Math.random()));
      }
    }
  }

  private async antiEntropy(p: PeerState): Promise<void> {
    if (p.busy || this.stopped) return;
    p.busy = true;
    const sent = performance.now();
    try {
      const mine = this.manager.current;
      const raw = await p.client.call('POST', PATHS.digest, {
        ...this.envelope(p.url),
        digest: { version: mine.version, checksum: mine.checksum },
      });
      const reply = parseExchange(raw, { digest: true });
      if (!this.noteReply(p, reply)) return;
      if (reply.digest?.checksum === this.manager.current.checksum) {
        if (!reply.seeded) this.manager.clearSeeded();
      } else {
        await this.sendDoc(p);
      }
      this.ok(p, 'pull', sent);
    } catch (e) {
      this.fail(p, 'pull', e, sent);
    } finally {
      p.busy = false;
    }
  }

  /** Send the full document; merge the peer's when it answers with a different one. */
  private async sendDoc(p: PeerState): Promise<void> {
    const sent = this.manager.current;
    const raw = await p.client.call('POST', PATHS.sync, {
      ...this.envelope(p.url),
      doc: sent.doc,
    });
    const reply = parseExchange(raw, { digest: true });
    if (!this.noteReply(p, reply)) return;
    if (reply.doc) {
      this.manager.receive(reply.doc, { seeded: reply.seeded, origin: p.url });
    } else if (reply.digest?.checksum === this.manager.current.checksum && !reply.seeded) {
      this.manager.clearSeeded();
    }
  }

  /** Record what a reply says about its sender; false when the peer must be dropped. */
  private noteReply(p: PeerState, reply: Exchange): boolean {
    if (reply.from.id === this.manager.writer) {
      if (reply.from.url !== this.selfUrl) {
        this.log.warn(
          { peer: p.url, id: reply.from.id, advertised: reply.from.url },
          "a peer answered with this proxy's node id from another URL: two proxies share DC_CLUSTER_NODE_ID",
        );
      }
      this.markIgnored(p.url, 'it is this proxy');
      return false;
    }
    for (const other of [...this.peers.values()]) {
      if (other === p || other.id !== reply.from.id) continue;
      // The same proxy under another URL: keep one (a configured or DNS-listed one if any).
      if (other.seed || other.dns || !(p.seed || p.dns)) {
        this.markIgnored(p.url, `same proxy as ${other.url}`);
        return false;
      }
      this.markIgnored(other.url, `same proxy as ${p.url}`);
    }
    p.id = reply.from.id;
    p.seeded = reply.seeded;
    this.notePlacement(p, reply.placement);
    if (reply.digest) {
      p.version = reply.digest.version;
      p.checksum = reply.digest.checksum;
    }
    if (reply.from.url && reply.from.url !== p.url) this.learn(reply.from.url);
    for (const url of reply.peers) this.learn(url);
    return true;
  }

  private mismatch(theirs: string | undefined): boolean {
    return theirs !== undefined && this.placement !== undefined && theirs !== this.placement;
  }

  private notePlacement(p: PeerState, theirs: string | undefined): void {
    const before = p.placement;
    p.placement = theirs;
    if (theirs !== before && this.mismatch(theirs)) {
      this.log.error(
        { peer: p.url, theirs, ours: this.placement },
        'a peer places keys with another hash or hash tag: the same ring maps keys differently there (set DC_CACHE_HASH and DC_CACHE_HASH_TAG alike on every proxy)',
      );
    }
  }

  /**
   * An exchange that began at `sent` (performance.now()) succeeded. Freshness counts from when the
   * call was sent, not when its answer was read: a reply read after this process was paused
   * says nothing about what the peer did during the pause.
   */
  private ok(p: PeerState, kind: 'push' | 'pull', sent: number): void {
    const now = Date.now();
    if (p.failures > 0) this.log.info({ peer: p.url, kind }, 'peer sync works again');
    p.lastOkMono = Math.max(p.lastOkMono, sent);
    p.lastOutcomeMono = Math.max(p.lastOutcomeMono, sent);
    p.lastSuccess = now;
    p.failures = 0;
    p.lastError = undefined;
    this.metrics.peerSyncOk(p.url, kind, now);
    this.onPeerState();
    this.resync();
  }

  /** During a re-sync, start a round with every peer not yet met since it began. */
  private resync(): void {
    if (!this.running) return;
    for (const p of this.peers.values())
      if (p.lastOutcomeMono < this.resyncFrom && !p.busy && !p.pushing) void this.antiEntropy(p);
  }

  private fail(p: PeerState, kind: 'push' | 'pull', e: unknown, sent: number): void {
    if (this.stopped || this.peers.get(p.url) !== p) return;
    const message = e instanceof PeerError || e instanceof Error ? e.message : String(e);
    p.lastOutcomeMono = Math.max(p.lastOutcomeMono, sent);
    p.failures++;
    p.failuresTotal++;
    p.lastError = message;
    this.metrics.peerSyncError(p.url, kind);
    // Log the first failure of a streak and then every 30th, not every round. A reply this proxy
    // refused (a malformed or hostile document) says so: the peer is reachable, its data is not.
    if (p.failures === 1 || p.failures % 30 === 0) {
      const refused = e instanceof DcacheError;
      this.log.warn(
        {
          peer: p.url,
          kind,
          failures: p.failures,
          err: message,
          ...(refused ? { code: e.code, reason: message } : {}),
        },
        refused ? 'refused a peer document' : 'peer sync failed',
      );
    }
    this.onPeerState();
    this.resync();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });
}
