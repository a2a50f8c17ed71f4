import type { FastifyReply, FastifyRequest } from 'fastify';
import { HTTP_DURATION_BUCKETS, statusClass } from '../metrics.js';
import type { Runtime } from '../runtime.js';

/** Records one answered request of a route: method, status and seconds. */
export type RouteRecorder = (method: string, status: number, seconds: number) => void;

const STATUS_CLASSES = ['2xx', '3xx', '4xx', '5xx'] as const;

/** The /metrics scrape is not counted in flight, so an idle proxy reads 0. */
export function countedUrl(url: string): boolean {
  return !(url === '/metrics' || url.startsWith('/metrics?'));
}

/**
 * Counts and times the answers of one route template through label children made once per
 * method and status class (no label hashing per request).
 */
export function routeRecorder(metrics: Runtime['metrics'], route: string): RouteRecorder {
  const { http } = metrics;
  type Children = { requests: { inc(): void }; duration: { observe(v: number): void } };
  const children = new Map<string, (Children | undefined)[]>();
  return (method, status, seconds) => {
    let byClass = children.get(method);
    if (!byClass) {
      byClass = [];
      children.set(method, byClass);
    }
    const sc = statusClass(status);
    const i = STATUS_CLASSES.indexOf(sc);
    let c = byClass[i];
    if (!c) {
      const labels = { route, method, status_class: sc };
      c = {
        requests: metrics.localCounter(http.requests, labels),
        duration: metrics.localHistogram(http.duration, labels, HTTP_DURATION_BUCKETS),
      };
      byClass[i] = c;
    }
    c.requests.inc();
    c.duration.observe(seconds);
  };
}

type Hook = (req: FastifyRequest, reply: FastifyReply, done: () => void) => void;

/** The onResponse hook of one route template: the in-flight count down, then its recorder. */
export function httpTracker(metrics: Runtime['metrics'], record: RouteRecorder): Hook {
  const { inflight } = metrics;
  return (req, reply, done) => {
    if (countedUrl(req.url)) inflight.dec();
    record(req.method, reply.statusCode, reply.elapsedTime / 1_000);
    done();
  };
}
