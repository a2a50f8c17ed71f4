import { Writable } from 'node:stream';
import { loadConfig, type RunningServer, startServer } from '@dcache/proxy';
import pino from 'pino';

/** A log line as pino writes it. */
export interface LogLine {
  level: number;
  msg: string;
  node?: string;
  from?: string;
  to?: string;
  [k: string]: unknown;
}

/** A proxy started in this process on a free port, with its log lines captured. */
export interface InProcessProxy extends RunningServer {
  logs: LogLine[];
}

/** Start a proxy in-process from DC_* settings (listening on 127.0.0.1, port 0). */
export async function startInProcessProxy(env: Record<string, string>): Promise<InProcessProxy> {
  const logs: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n'))
        if (line) logs.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  const config = loadConfig({
    env: { DC_SERVER_HOST: '127.0.0.1', DC_SERVER_PORT: '0', DC_LOGGER_LEVEL: 'info', ...env },
  });
  const log = pino({ level: 'info' }, stream);
  const server = await startServer(config, { log });
  return Object.assign(server, { logs });
}

/** One HTTP call's outcome as load loops record it. */
export interface Sample {
  key: string;
  status: number;
  ms: number;
  at: number;
}

/** Run `fn` with `concurrency` workers until `until()` is true or `maxMs`/`maxRequests` is reached. */
export async function loadLoop(
  opts: { concurrency: number; maxMs: number; maxRequests: number; until?: () => boolean },
  fn: (i: number) => Promise<void>,
): Promise<number> {
  const end = Date.now() + opts.maxMs;
  let i = 0;
  const worker = async () => {
    while (Date.now() < end && i < opts.maxRequests && !opts.until?.()) {
      await fn(i++);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return i;
}

/** Percentile of a list of numbers (nearest rank). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? 0;
}
