import pino, { type Logger } from 'pino';
import type { Config } from './config.js';

/** Paths never logged: tokens, passwords, values. */
export const REDACT = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'password',
  'token',
  '*.password',
  '*.token',
  'value',
  '*.value',
];

/** Whether logs to `dest` go to a terminal (`logger.format: auto` is pretty then). */
export function isTerminal(dest: number | string): boolean {
  if (dest === 1) return process.stdout.isTTY === true;
  if (dest === 2) return process.stderr.isTTY === true;
  return false;
}

/** The process logger: JSON, or pretty with `logger.format: pretty` (or `auto` on a terminal). */
export function createLogger(cfg: Config['logger']): Logger {
  const base = { level: cfg.level, redact: { paths: REDACT, censor: '[redacted]' } };
  const dest = cfg.outputPath === 'stdout' ? 1 : cfg.outputPath === 'stderr' ? 2 : cfg.outputPath;
  if (cfg.format === 'pretty' || (cfg.format === 'auto' && isTerminal(dest))) {
    return pino({
      ...base,
      transport: {
        target: 'pino-pretty',
        options: { destination: dest, colorize: isTerminal(dest) },
      },
    });
  }
  return pino(base, pino.destination({ dest, sync: false, mkdir: typeof dest === 'string' }));
}
