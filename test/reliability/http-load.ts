import { Agent, request } from 'node:http';

/** One request of a load loop, as the client saw it. */
export interface Outcome {
  method: string;
  path: string;
  /** performance.now() just before the request was written. */
  sentAt: number;
  doneAt: number;
  /** HTTP status, or 0 when the request failed without a complete response. */
  status: number;
  /** Socket error code (ECONNREFUSED, ECONNRESET, …) when status is 0. */
  error?: string;
  body: string;
}

/** A keep-alive client over node:http (a request is on the wire when it is sent, never queued). */
export class LoadClient {
  readonly agent: Agent;
  constructor(
    readonly host: string,
    readonly port: number,
    maxSockets = 64,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets });
  }

  /** Send one request and read the whole response; never throws. */
  send(method: string, path: string, json?: unknown, timeoutMs = 10_000): Promise<Outcome> {
    const body = json === undefined ? undefined : JSON.stringify(json);
    return new Promise((resolve) => {
      const sentAt = performance.now();
      let settled = false;
      const done = (status: number, text: string, error?: string) => {
        if (settled) return;
        settled = true;
        resolve({
          method,
          path,
          sentAt,
          doneAt: performance.now(),
          status,
          body: text,
          ...(error !== undefined ? { error } : {}),
        });
      };
      const req = request(
        {
          host: this.host,
          port: this.port,
          method,
          path,
          agent: this.agent,
          headers: body
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
            : {},
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => done(res.statusCode ?? 0, Buffer.concat(chunks).toString()));
          res.on('error', (e: NodeJS.ErrnoException) => done(0, '', e.code ?? e.message));
          res.on('aborted', () => done(0, '', 'ABORTED'));
        },
      );
      req.on('timeout', () => {
        req.destroy();
        done(0, '', 'TIMEOUT');
      });
      req.on('error', (e: NodeJS.ErrnoException) => done(0, '', e.code ?? e.message));
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Run `workers` loops of `step` until `stop()` is true, `maxMs` passes or `maxRequests` were made. */
export async function runLoad(
  opts: { workers: number; maxMs: number; maxRequests: number; stop?: () => boolean },
  step: (i: number, worker: number) => Promise<unknown>,
): Promise<number> {
  const end = performance.now() + opts.maxMs;
  let i = 0;
  const loop = async (w: number) => {
    while (performance.now() < end && i < opts.maxRequests && !opts.stop?.()) await step(i++, w);
  };
  await Promise.all(Array.from({ length: opts.workers }, (_, w) => loop(w)));
  return i;
}
