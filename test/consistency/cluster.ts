/** Helpers for cluster consistency tests: ring views of every proxy, waits, key selection. */
import { waitFor } from '@dcache/test-utils';

/** Fast health (ejection and re-add in a second or two) and an admin token, for every proxy. */
export const CONSISTENCY_ENV = {
  DC_HEALTH_INTERVAL: '200ms',
  DC_HEALTH_TIMEOUT: '150ms',
  DC_HEALTH_SUCCESS_THRESHOLD: '2',
  DC_HEALTH_RETRY_INTERVAL: '300ms',
  DC_CACHE_COMMAND_TIMEOUT: '500ms',
  DC_CACHE_CONNECT_TIMEOUT: '500ms',
  DC_ADMIN_TOKEN: 'admin',
};

/** GET /api/v1/ring as these tests read it. */
export type RingBody = {
  checksum: string;
  epoch: number;
  nodes: { id: string; state: string; routing: string }[];
};

/** One proxy's ring, undefined when it does not answer. */
export async function ringOf(url: string): Promise<RingBody | undefined> {
  try {
    const r = await fetch(`${url}/api/v1/ring`, { signal: AbortSignal.timeout(2_000) });
    return r.ok ? ((await r.json()) as RingBody) : undefined;
  } catch {
    return undefined;
  }
}

/** Samples every proxy's ring checksum; per checksum: first seen anywhere → seen everywhere. */
export class AgreementSampler {
  private readonly firstSeen = new Map<string, number[]>();
  /** Views first seen while some proxy did not answer: their time includes its downtime. */
  private readonly unfair = new Set<string>();
  private running = true;
  private readonly loop: Promise<void>;
  /** `onView(i, ring)`: proxy i was first seen holding `ring` (for explaining a failure). */
  constructor(
    private readonly urls: readonly string[],
    private readonly onView?: (proxy: number, ring: RingBody) => void,
  ) {
    this.loop = this.run();
  }
  private async run(): Promise<void> {
    const t0 = performance.now();
    while (this.running) {
      const rings = await Promise.all(this.urls.map(ringOf));
      const t = performance.now() - t0;
      const allUp = rings.every((r) => r !== undefined);
      rings.forEach((r, i) => {
        if (!r) return;
        if (!this.firstSeen.has(r.checksum) && !allUp) this.unfair.add(r.checksum);
        const seen = this.firstSeen.get(r.checksum) ?? this.urls.map(() => Number.NaN);
        if (Number.isNaN(seen[i] as number)) {
          seen[i] = t;
          this.onView?.(i, r);
        }
        this.firstSeen.set(r.checksum, seen);
      });
      await new Promise((res) => setTimeout(res, 10));
    }
  }
  /** Milliseconds from the first proxy to the last showing each view every proxy showed. */
  async stop(): Promise<number[]> {
    this.running = false;
    await this.loop;
    return [...this.firstSeen]
      .filter(([c]) => !this.unfair.has(c))
      .map(([, s]) => s)
      .filter((s) => s.every((x) => !Number.isNaN(x)))
      .map((s) => Math.max(...s) - Math.min(...s));
  }
}

/** A ring in one line: its epoch and every node that does not serve (routing, admin state). */
export function viewSummary(r: RingBody): string {
  const away = r.nodes
    .filter((n) => n.routing !== 'up' || n.state !== 'active')
    .map((n) => `${n.id} ${n.routing}${n.state === 'active' ? '' : `/${n.state}`}`);
  return `epoch ${r.epoch}: ${away.length === 0 ? 'all up' : away.join(', ')}`;
}

/** Wait until every proxy shows node `id` with `routing` (and admin `state` when given). */
export async function waitRouting(
  urls: readonly string[],
  id: string,
  routing: string | undefined,
  state?: string,
  timeout = 30_000,
): Promise<void> {
  await waitFor(
    async () => {
      const rings = await Promise.all(urls.map(ringOf));
      return rings.every((r) => {
        const n = r?.nodes.find((x) => x.id === id);
        if (routing === undefined) return r !== undefined && n === undefined;
        return (
          n !== undefined && n.routing === routing && (state === undefined || n.state === state)
        );
      });
    },
    { timeout, interval: 25, message: `${id} to be ${routing ?? 'gone'} on every proxy` },
  );
}

/** Wait until every proxy shows the same ring checksum. */
export async function waitAgree(urls: readonly string[], timeout = 30_000): Promise<void> {
  await waitFor(
    async () => {
      const rings = await Promise.all(urls.map(ringOf));
      return rings.every((r) => r !== undefined && r.checksum === rings[0]?.checksum);
    },
    { timeout, interval: 25, message: 'every proxy to show the same ring' },
  );
}

/** Keys whose home node is `node` (from the proxy's owner route). */
export async function keysOwnedBy(
  url: string,
  node: string,
  n: number,
  prefix: string,
): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; out.length < n && i < 2_000; i++) {
    const key = `${prefix}:${i}`;
    const r = (await (await fetch(`${url}/api/v1/ring/owner/${key}`)).json()) as { home: string };
    if (r.home === node) out.push(key);
  }
  return out;
}

/** Sleep (between fault steps only; tests wait on conditions). */
export const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
