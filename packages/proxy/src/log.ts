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

/** The process logger: JSON by default, pretty with `logger.format: pretty`. */
export function createLogger(cfg: Config['logger']): Logger {
  const base = { level: cfg.level, redact: { paths: REDACT, censor: '[redacted]' } };
  const dest = cfg.outputPath === 'stdout' ? 1 : cfg.outputPath === 'stderr' ? 2 : cfg.outputPath;
  if (cfg.format === 'pretty') {
    return pino({
      ...base,
      transport: {
        target: 'pino-pretty',
        options: { destination: dest, colorize: dest === 1 && process.stdout.isTTY },
      },
    });
  }
  return pino(base, pino.destination({ dest, sync: false, mkdir: typeof dest === 'string' }));
}
