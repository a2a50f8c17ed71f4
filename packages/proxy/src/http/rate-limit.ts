import type { IncomingMessage } from 'node:http';
import { formatDuration } from '../duration.js';
import { DcacheError } from '../errors.js';
import { WindowCounter } from '../security/window-counter.js';

/** Paths the rate limit never counts: probes, scrapes and the peer exchange. */
export function rateLimitExempt(url: string): boolean {
  return url.startsWith('/health') || url === '/metrics' || url.startsWith('/internal/');
}

/** What the rate limit says about one request: its X-RateLimit-* headers and, past the limit, the refusal. */
export interface RateVerdict {
  /** Flat name/value pairs for the answer. */
  headers: string[];
  /** RATE_LIMITED (429) when the client is past the limit. */
  refused: DcacheError | undefined;
}

/**
 * The rate limit of every route and front end: `max` requests per client and window, counted in
 * one WindowCounter. Each counted answer carries X-RateLimit-Limit, -Remaining and -Reset (seconds
 * until the window ends); a refused one also Retry-After.
 */
export class RateLimit {
  private readonly counter: WindowCounter;
  private readonly max: number;
  private readonly windowMs: number;
  private readonly clientOf: (req: IncomingMessage) => string;
  private readonly onRefused: () => void;

  constructor(
    max: number,
    windowMs: number,
    clientOf: (req: IncomingMessage) => string,
    onRefused: () => void,
  ) {
    this.counter = new WindowCounter(windowMs);
    this.max = max;
    this.windowMs = windowMs;
    this.clientOf = clientOf;
    this.onRefused = onRefused;
  }

  /** Count one request of its client. */
  check(req: IncomingMessage): RateVerdict {
    const c = this.counter.hit(this.clientOf(req));
    const reset = String(Math.max(0, Math.ceil(c.ttl / 1_000)));
    const remaining = String(Math.max(0, this.max - c.current));
    const headers = [
      'x-ratelimit-limit',
      String(this.max),
      'x-ratelimit-remaining',
      remaining,
      'x-ratelimit-reset',
      reset,
    ];
    if (c.current <= this.max) return { headers, refused: undefined };
    this.onRefused();
    headers.push('retry-after', reset === '0' ? '1' : reset);
    const refused = new DcacheError(
      'RATE_LIMITED',
      `rate limit of ${this.max} requests per ${formatDuration(this.windowMs)} exceeded`,
    );
    return { headers, refused };
  }
}
